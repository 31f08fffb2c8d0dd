#include "common/safetensors.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/status_matchers.h"

namespace microgpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string LittleEndian64(uint64_t n) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>(n >> (8 * i)));
  return bytes;
}

// A file from a header and a data buffer, as the format lays them out.
std::string MakeFile(const std::string& header, const std::string& buffer) {
  return LittleEndian64(header.size()) + header + buffer;
}

// A valid two-tensor file made by hand: "a" F32 [2] and "b" I32 [1, 1].
const char kValidHeader[] =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
    R"("b":{"dtype":"I32","shape":[1,1],"data_offsets":[8,12]}})";

TEST(SafetensorsTest, DtypeNamesAndSizes) {
  for (const char* name :
       {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
        "I32", "U32", "F32", "F64", "I64", "U64"}) {
    Dtype dtype;
    ASSERT_TRUE(ParseDtype(name, &dtype)) << name;
    EXPECT_EQ(DtypeName(dtype), name);
  }
  Dtype dtype;
  EXPECT_FALSE(ParseDtype("f32", &dtype));
  EXPECT_FALSE(ParseDtype("", &dtype));
  EXPECT_EQ(DtypeSize(Dtype::kF32), 4u);
  EXPECT_EQ(DtypeSize(Dtype::kI32), 4u);
  EXPECT_EQ(DtypeSize(Dtype::kBF16), 2u);
  EXPECT_EQ(DtypeSize(Dtype::kU64), 8u);
  EXPECT_EQ(DtypeSize(Dtype::kBool), 1u);
}

TEST(SafetensorsTest, WriterRoundTrip) {
  const std::vector<float> weights = {1.5f, -2.0f, 0.0f, 3.25f, -0.0f, 1e-40f};
  const std::vector<int32_t> order = {3, -1, 2147483647, -2147483647 - 1};
  const std::string bytes8 = "\x01\x02\x03";
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.AddF32("w", {2, 3}, weights).ok());
  ASSERT_TRUE(writer.AddI32("order", {4}, order).ok());
  ASSERT_TRUE(writer.AddTensor("bytes", Dtype::kU8, {3}, bytes8).ok());
  ASSERT_TRUE(writer.AddTensor("empty", Dtype::kF64, {0, 5}, "").ok());
  ASSERT_TRUE(writer.AddTensor("scalar", Dtype::kU8, {}, "\x07").ok());
  ASSERT_TRUE(writer.AddMetadata("key", "value").ok());
  ASSERT_TRUE(writer.AddMetadata("\xE6\x97\xA5", "{\"json\": [1]}").ok());
  const std::string file = writer.Serialize();

  // The buffer starts 8-byte aligned.
  uint64_t header_size = 0;
  std::memcpy(&header_size, file.data(), 8);
  EXPECT_EQ((8 + header_size) % 8, 0u);

  const absl::StatusOr<SafetensorsFile> parsed = ParseSafetensors(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->tensors.size(), 5u);
  EXPECT_EQ(parsed->metadata.size(), 2u);
  ASSERT_NE(parsed->FindMetadata("key"), nullptr);
  EXPECT_EQ(*parsed->FindMetadata("key"), "value");
  EXPECT_EQ(*parsed->FindMetadata("\xE6\x97\xA5"), "{\"json\": [1]}");
  EXPECT_EQ(parsed->FindMetadata("missing"), nullptr);
  EXPECT_EQ(parsed->Find("missing"), nullptr);

  const SafetensorsTensor* w = parsed->Find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, Dtype::kF32);
  EXPECT_THAT(w->shape, ElementsAre(2, 3));
  std::vector<float> w_back(6);
  DecodeF32(w->data, w_back.data());
  EXPECT_EQ(std::memcmp(w_back.data(), weights.data(), 24), 0);

  const SafetensorsTensor* o = parsed->Find("order");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->dtype, Dtype::kI32);
  std::vector<int32_t> o_back(4);
  DecodeI32(o->data, o_back.data());
  EXPECT_EQ(o_back, order);

  EXPECT_EQ(parsed->Find("bytes")->data, bytes8);
  EXPECT_THAT(parsed->Find("empty")->shape, ElementsAre(0, 5));
  EXPECT_TRUE(parsed->Find("empty")->data.empty());
  EXPECT_TRUE(parsed->Find("scalar")->shape.empty());
  EXPECT_EQ(parsed->Find("scalar")->data, "\x07");

  // The data is little-endian, in the order the tensors were added.
  const std::string buffer = file.substr(8 + header_size);
  EXPECT_EQ(buffer.size(), 24u + 16u + 3u + 0u + 1u);
  EXPECT_EQ(buffer.substr(0, 4), std::string("\x00\x00\xC0\x3F", 4));  // 1.5f
  EXPECT_EQ(buffer.substr(24, 4), std::string("\x03\x00\x00\x00", 4));
}

TEST(SafetensorsTest, EmptyFileRoundTrip) {
  const std::string file = SafetensorsWriter().Serialize();
  const absl::StatusOr<SafetensorsFile> parsed = ParseSafetensors(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->tensors.empty());
  EXPECT_TRUE(parsed->metadata.empty());
}

TEST(SafetensorsTest, ReadsHandMadeFilesWithPaddingAndAnyKeyOrder) {
  const std::string buffer("\x00\x00\x80\x3F\x00\x00\x00\x40\x05\x00\x00\x00",
                           12);
  // The parsed tensors point into `file`.
  const std::string file = MakeFile(std::string(kValidHeader) + "    ", buffer);
  const absl::StatusOr<SafetensorsFile> parsed = ParseSafetensors(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  float a[2];
  DecodeF32(parsed->Find("a")->data, a);
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(a[1], 2.0f);
  int32_t b;
  DecodeI32(parsed->Find("b")->data, &b);
  EXPECT_EQ(b, 5);

  // Tensors listed out of data order, metadata last.
  const std::string reordered =
      R"({"b":{"data_offsets":[0,4],"shape":[1],"dtype":"I32"},)"
      R"("a":{"shape":[2],"dtype":"F32","data_offsets":[4,12]},)"
      R"("__metadata__":{"k":"v"}})";
  EXPECT_TRUE(ParseSafetensors(MakeFile(reordered, buffer)).ok());
}

TEST(SafetensorsTest, RejectsEveryTruncation) {
  SafetensorsWriter writer;
  const std::vector<float> values(10, 1.0f);
  ASSERT_TRUE(writer.AddF32("x", {10}, values).ok());
  ASSERT_TRUE(writer.AddMetadata("k", "v").ok());
  const std::string file = writer.Serialize();
  ASSERT_TRUE(ParseSafetensors(file).ok());
  for (size_t n = 0; n < file.size(); ++n) {
    EXPECT_THAT(ParseSafetensors(file.substr(0, n)),
                StatusIs(absl::StatusCode::kDataLoss, ::testing::_))
        << "prefix of " << n << " bytes";
  }
  // Extra trailing bytes are not covered by any tensor.
  EXPECT_THAT(ParseSafetensors(file + "x"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("cover")));
}

TEST(SafetensorsTest, RejectsBadHeaderLengths) {
  const std::string buffer(12, '\0');
  const std::string good = MakeFile(kValidHeader, buffer);
  ASSERT_TRUE(ParseSafetensors(good).ok());
  const std::string rest = good.substr(8);
  for (uint64_t length : {uint64_t{0}, uint64_t{1}, uint64_t{rest.size() + 1},
                          uint64_t{1} << 32, uint64_t{1} << 63, ~uint64_t{0}}) {
    EXPECT_THAT(ParseSafetensors(LittleEndian64(length) + rest),
                StatusIs(absl::StatusCode::kDataLoss, ::testing::_))
        << length;
  }
  EXPECT_THAT(ParseSafetensors(LittleEndian64(~uint64_t{0}) + rest),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("limit")));
  EXPECT_THAT(ParseSafetensors(LittleEndian64(rest.size() + 1) + rest),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("past the end")));
  // A header over the caller's limit.
  EXPECT_THAT(ParseSafetensors(good, /*max_header_bytes=*/16),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("limit of 16")));
}

struct BadHeader {
  const char* what;
  std::string header;
  size_t buffer_size;
  const char* message;
};

TEST(SafetensorsTest, RejectsMalformedHeaders) {
  const std::vector<BadHeader> cases = {
      {"not JSON", "{\"a\":", 0, "not valid JSON"},
      {"not an object", "[1,2]", 0, "not a JSON object"},
      {"a string", "\"x\"", 0, "not a JSON object"},
      {"unknown dtype",
       R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4,
       "unknown dtype"},
      {"dtype not a string",
       R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4, "dtype"},
      {"shape does not match the bytes",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4,
       "does not match its dtype and shape"},
      {"dtype does not match the bytes",
       R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,4]}})", 4,
       "does not match its dtype and shape"},
      {"negative dimension",
       R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4,
       "shape entry"},
      {"fractional dimension",
       R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 4,
       "shape entry"},
      {"dimension too large",
       R"({"a":{"dtype":"F32","shape":[18446744073709551615],)"
       R"("data_offsets":[0,4]}})",
       4, "shape entry"},
      {"shape product overflow",
       R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
       R"("data_offsets":[0,0]}})",
       0, "does not match its dtype and shape"},
      {"shape product overflow with dtype size",
       R"({"a":{"dtype":"F64","shape":[2305843009213693952],)"
       R"("data_offsets":[0,0]}})",
       0, "does not match its dtype and shape"},
      {"end past the buffer",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4,
       "outside the data buffer"},
      {"begin after end",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8,
       "outside the data buffer"},
      {"offset overflow",
       R"({"a":{"dtype":"U8","shape":[4],)"
       R"("data_offsets":[18446744073709551614,2]}})",
       4, "outside the data buffer"},
      {"offset beyond uint64",
       R"({"a":{"dtype":"U8","shape":[4],)"
       R"("data_offsets":[0,18446744073709551620]}})",
       4, "data_offsets"},
      {"negative offset",
       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}})", 4,
       "data_offsets"},
      {"three offsets",
       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4,4]}})", 4,
       "data_offsets"},
      {"missing offsets", R"({"a":{"dtype":"U8","shape":[4]}})", 4,
       "data_offsets"},
      {"missing shape", R"({"a":{"dtype":"U8","data_offsets":[0,4]}})", 4,
       "shape"},
      {"unknown field",
       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"x":1}})", 4,
       "unknown field"},
      {"tensor not an object", R"({"a":[1,2]})", 0, "not a JSON object"},
      {"empty name", R"({"":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
       4, "empty name"},
      {"overlap",
       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
       8, "overlaps"},
      {"same bytes twice",
       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
       4, "overlaps"},
      {"gap",
       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})",
       10, "gap"},
      {"uncovered tail",
       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 6,
       "cover 4 of the 6"},
      {"duplicate tensor",
       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
       R"("a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
       8, "\"a\" twice"},
      {"duplicate metadata key", R"({"__metadata__":{"k":"1","k":"2"}})", 0,
       "\"k\" twice"},
      {"metadata not an object", R"({"__metadata__":"x"})", 0, "__metadata__"},
      {"metadata value not a string", R"({"__metadata__":{"k":1}})", 0,
       "not a string"},
      {"deep nesting", std::string(1000, '[') + std::string(1000, ']'), 0,
       "nests"},
      {"invalid UTF-8 in a name",
       "{\"\xFF\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
       "not valid JSON"},
  };
  for (const BadHeader& c : cases) {
    EXPECT_THAT(
        ParseSafetensors(MakeFile(c.header, std::string(c.buffer_size, '\0'))),
        StatusIs(absl::StatusCode::kDataLoss, HasSubstr(c.message)))
        << c.what;
  }
}

TEST(SafetensorsTest, SurvivesEveryByteFlipAndRandomGarbage) {
  // Flipped header bytes must be rejected or parse into something
  // consistent; they must never crash (the sanitizer builds check that).
  SafetensorsWriter writer;
  const std::vector<float> values = {1, 2, 3, 4};
  ASSERT_TRUE(writer.AddF32("x", {2, 2}, values).ok());
  ASSERT_TRUE(writer.AddMetadata("k", "v").ok());
  const std::string file = writer.Serialize();
  int accepted = 0;
  for (size_t i = 0; i < file.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      std::string copy = file;
      copy[i] = static_cast<char>(copy[i] ^ mask);
      const absl::StatusOr<SafetensorsFile> parsed = ParseSafetensors(copy);
      if (!parsed.ok()) continue;
      ++accepted;
      for (const SafetensorsTensor& t : parsed->tensors) {
        EXPECT_GE(t.data.data(), copy.data());
        EXPECT_LE(t.data.data() + t.data.size(), copy.data() + copy.size());
      }
    }
  }
  EXPECT_LT(accepted, static_cast<int>(3 * file.size()));
  uint64_t state = 12345;
  for (int i = 0; i < 2000; ++i) {
    std::string garbage(8 + i % 64, '\0');
    for (char& c : garbage) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      c = static_cast<char>(state >> 56);
    }
    garbage.replace(0, 8, LittleEndian64(i % 56));
    (void)ParseSafetensors(garbage);
  }
}

TEST(SafetensorsTest, MetadataIsReadFromTheHeaderAlone) {
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, const std::string& bytes) {
    const std::string path = dir + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return path;
  };
  SafetensorsWriter writer;
  const std::vector<float> weights(1000, 0.5f);
  ASSERT_TRUE(writer.AddF32("w", {1000}, weights).ok());
  ASSERT_TRUE(writer.AddMetadata("microgpt.step", "300").ok());
  const std::string file = writer.Serialize();
  auto whole = ReadSafetensorsMetadata(write("whole.safetensors", file));
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_THAT(*whole, ElementsAre(Pair("microgpt.step", "300")));
  // The tensors' bytes are neither read nor checked: a file cut inside its
  // data still gives its metadata (ParseSafetensors refuses it).
  auto cut =
      ReadSafetensorsMetadata(write("cut.safetensors", file.substr(0, 200)));
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_THAT(*cut, ElementsAre(Pair("microgpt.step", "300")));
  EXPECT_THAT(ParseSafetensors(file.substr(0, 200)),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("outside the data buffer")));
  // A malformed header is DATA_LOSS naming the file; no file is NOT_FOUND.
  EXPECT_THAT(
      ReadSafetensorsMetadata(write("short.safetensors", "\x05\0\0")),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("short.safetensors")));
  EXPECT_THAT(ReadSafetensorsMetadata(
                  write("long.safetensors", LittleEndian64(1000) + "{}")),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("runs past the end of the file")));
  EXPECT_THAT(ReadSafetensorsMetadata(write(
                  "meta.safetensors", MakeFile(R"({"__metadata__":[1]})", ""))),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("\"__metadata__\" is not a JSON object")));
  EXPECT_THAT(ReadSafetensorsMetadata(dir + "/missing.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

TEST(SafetensorsTest, WriterRejectsBadTensorsAndMetadata) {
  SafetensorsWriter writer;
  const std::vector<float> values(6);
  EXPECT_THAT(writer.AddF32("x", {2, 2}, values),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("does not match")));
  EXPECT_THAT(writer.AddF32("x", {-2, -3}, values),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_TRUE(writer.AddF32("x", {2, 3}, values).ok());
  EXPECT_THAT(writer.AddF32("x", {2, 3}, values),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(writer.AddF32("", {2, 3}, values),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(writer.AddF32("__metadata__", {2, 3}, values),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(writer.AddF32("bad\xFF", {2, 3}, values),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_TRUE(writer.AddMetadata("k", "v").ok());
  EXPECT_THAT(writer.AddMetadata("k", "w"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(writer.AddMetadata("j", "\xC0\xAF"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("UTF-8")));
  // What was accepted still makes a valid file.
  const absl::StatusOr<SafetensorsFile> parsed =
      ParseSafetensors(writer.Serialize());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tensors.size(), 1u);
  EXPECT_EQ(parsed->metadata.size(), 1u);
}

TEST(SafetensorsTest, HeaderIsPlainSafetensorsJson) {
  SafetensorsWriter writer;
  const std::vector<float> a = {1, 2};
  const std::vector<int32_t> b = {7};
  ASSERT_TRUE(writer.AddF32("a", {2}, a).ok());
  ASSERT_TRUE(writer.AddI32("b", {1}, b).ok());
  ASSERT_TRUE(writer.AddMetadata("format", "pt").ok());
  const std::string file = writer.Serialize();
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(
      file.substr(8, n), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(header.is_object());
  EXPECT_EQ(header,
            nlohmann::json::parse(
                R"({"__metadata__":{"format":"pt"},)"
                R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}})"));
}

}  // namespace
}  // namespace microgpt
