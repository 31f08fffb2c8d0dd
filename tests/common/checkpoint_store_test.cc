// The on-disk checkpoint store: atomic publishing, listing, verified loading.
#include "common/checkpoint_store.h"

#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace microgpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<uint32_t> Bits(const std::vector<float>& values) {
  std::vector<uint32_t> bits(values.size());
  std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
  return bits;
}

ModelCheckpoint TestModel(int64_t step = 100) {
  const std::vector<std::string> docs = {"emma", "olivia", "ava", "noah"};
  Tokenizer tokenizer = Tokenizer::FromDocuments(docs);
  ModelConfig config;
  config.n_embd = 8;
  config.n_head = 2;
  config.n_layer = 1;
  config.block_size = 8;
  config.vocab_size = tokenizer.vocab_size();
  std::vector<float> parameters(ParameterLayout(config).total_size());
  Rng rng(static_cast<uint64_t>(step));
  for (float& p : parameters) p = static_cast<float>(rng.Normal() * 0.08);
  return ModelCheckpoint{config, std::move(tokenizer), std::move(parameters),
                         step, 2.5};
}

OptimizerCheckpoint TestOptimizer(const ParameterLayout& layout) {
  OptimizerCheckpoint state;
  state.adam_step = 100;
  state.m.assign(layout.total_size(), 0.25f);
  state.v.assign(layout.total_size(), 1e-6f);
  state.m[3] = -0.0f;
  state.data_order = {2, 0, 1};
  state.data_epoch = 33;
  state.data_cursor = 1;
  state.rng_state = {11, 22, 33, 44};
  state.dataset_sha256 = std::string(64, 'a');
  return state;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class CheckpointStoreTest : public ::testing::Test {
 protected:
  // Publishes TestModel(version) and its optimizer state as `version`.
  absl::Status PublishVersion(CheckpointStore& store, int64_t version,
                              bool with_optimizer = true,
                              const std::string& model_name = "names") {
    const ModelCheckpoint model = TestModel(version);
    const ParameterLayout layout(model.config);
    const OptimizerCheckpoint optimizer = TestOptimizer(layout);
    return store.Publish(model_name, version, model,
                         with_optimizer ? &optimizer : nullptr, layout);
  }

  std::vector<std::string> Entries(const std::string& path) {
    std::vector<std::string> names;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  // Rewrites the manifest entry of `file` to describe the bytes now on disk.
  void ResealManifest(const std::string& version_dir, const std::string& file) {
    const std::string manifest_path = version_dir + "/manifest.json";
    nlohmann::json manifest =
        nlohmann::json::parse(ReadBytes(manifest_path), nullptr, false);
    ASSERT_TRUE(manifest.is_object());
    const std::string bytes = ReadBytes(version_dir + "/" + file);
    const absl::StatusOr<std::string> sha256 = Sha256Hex(bytes);
    ASSERT_TRUE(sha256.ok());
    manifest["files"][file] = {{"size", bytes.size()}, {"sha256", *sha256}};
    WriteBytes(manifest_path, manifest.dump());
  }

  testing::TempDir temp_;
  const std::string dir_ = temp_.path();
  const std::string root_ = dir_ + "/models";  // created by the first Publish
};

TEST(Sha256Test, KnownAnswers) {
  EXPECT_EQ(*Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(*Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256Hasher hasher;
  hasher.Update("a");
  hasher.Update("");
  hasher.Update("bc");
  EXPECT_EQ(*hasher.HexDigest(), *Sha256Hex("abc"));
  EXPECT_THAT(hasher.HexDigest(),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_TRUE(IsSha256Hex(*Sha256Hex("x")));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'A')));
}

TEST(ValidateModelNameTest, AcceptsAndRejects) {
  for (const std::string& good :
       {std::string("a"), std::string("names"), std::string("Model-1.2_x"),
        std::string("0abc"), std::string(64, 'm')}) {
    EXPECT_THAT(ValidateModelName(good), IsOk()) << good;
  }
  for (const std::string& bad :
       {std::string(""), std::string(65, 'm'), std::string("."),
        std::string(".."), std::string("../x"), std::string("a/b"),
        std::string("/abs"), std::string(".hidden"), std::string("-x"),
        std::string("_x"), std::string("a b"), std::string("caf\xC3\xA9"),
        std::string("a\0b", 3), std::string(".tmp-1-2-3")}) {
    EXPECT_THAT(ValidateModelName(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << bad;
  }
}

TEST_F(CheckpointStoreTest, PublishListAndLoad) {
  CheckpointStore store(root_);
  const ModelCheckpoint model = TestModel(100);
  const ParameterLayout layout(model.config);
  const OptimizerCheckpoint optimizer = TestOptimizer(layout);
  ASSERT_THAT(store.Publish("names", 100, model, &optimizer, layout), IsOk());

  EXPECT_EQ(store.VersionPath("names", 100), root_ + "/names/100");
  EXPECT_THAT(Entries(root_ + "/names"), ElementsAre("100"));
  EXPECT_THAT(Entries(root_ + "/names/100"),
              ElementsAre("manifest.json", "model.safetensors",
                          "optimizer.safetensors"));
  const absl::StatusOr<std::vector<std::string>> models = store.ListModels();
  ASSERT_THAT(models, IsOk());
  EXPECT_THAT(*models, ElementsAre("names"));
  const absl::StatusOr<std::vector<int64_t>> versions =
      store.ListVersions("names");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(*versions, ElementsAre(100));

  const absl::StatusOr<ModelCheckpoint> loaded = store.LoadModel("names", 100);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->config, model.config);
  EXPECT_EQ(loaded->tokenizer, model.tokenizer);
  EXPECT_EQ(loaded->step, 100);
  EXPECT_EQ(loaded->loss, 2.5);
  EXPECT_EQ(Bits(loaded->parameters), Bits(model.parameters));

  const absl::StatusOr<OptimizerCheckpoint> state =
      store.LoadOptimizer("names", 100, layout);
  ASSERT_THAT(state, IsOk());
  EXPECT_EQ(Bits(state->m), Bits(optimizer.m));
  EXPECT_EQ(Bits(state->v), Bits(optimizer.v));
  EXPECT_EQ(state->data_order, optimizer.data_order);
  EXPECT_EQ(state->data_epoch, 33);
  EXPECT_EQ(state->data_cursor, 1);
  EXPECT_EQ(state->rng_state, optimizer.rng_state);
  EXPECT_EQ(state->dataset_sha256, optimizer.dataset_sha256);
  EXPECT_EQ(state->adam_step, 100);
}

TEST_F(CheckpointStoreTest, ManifestListsSizesAndHashes) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 7), IsOk());
  const std::string dir = store.VersionPath("names", 7);
  const nlohmann::json manifest =
      nlohmann::json::parse(ReadBytes(dir + "/manifest.json"), nullptr, false);
  ASSERT_TRUE(manifest.is_object());
  EXPECT_EQ(manifest["version"], 7);
  ASSERT_TRUE(manifest["files"].is_object());
  EXPECT_EQ(manifest["files"].size(), 2u);
  for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
    const std::string bytes = ReadBytes(dir + "/" + file);
    EXPECT_EQ(manifest["files"][file]["size"], bytes.size()) << file;
    EXPECT_EQ(manifest["files"][file]["sha256"], *Sha256Hex(bytes)) << file;
  }
  // The published model file is exactly SerializeModel's bytes.
  EXPECT_EQ(ReadBytes(dir + "/model.safetensors"),
            SerializeModel(TestModel(7)));
}

TEST_F(CheckpointStoreTest, VersionsAreSortedNumerically) {
  CheckpointStore store(root_);
  for (int64_t version : {3, 1, 20, 2, 100}) {
    ASSERT_THAT(PublishVersion(store, version), IsOk()) << version;
  }
  const auto versions = store.ListVersions("names");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(*versions, ElementsAre(1, 2, 3, 20, 100));
}

TEST_F(CheckpointStoreTest, OnlyCanonicalPositiveNumbersAreVersions) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 5), IsOk());
  const std::string model_dir = root_ + "/names";
  for (const char* name :
       {"0", "007", "+8", "-9", "1e3", "12a", " 13", "abc",
        "99999999999999999999", "9223372036854775808", ".tmp-6-123-abcd"}) {
    ASSERT_EQ(::mkdir((model_dir + "/" + name).c_str(), 0755), 0) << name;
  }
  ASSERT_EQ(::mkdir((model_dir + "/9223372036854775807").c_str(), 0755), 0);
  WriteBytes(model_dir + "/42", "a file, not a directory");
  const auto versions = store.ListVersions("names");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(*versions, ElementsAre(5, 9223372036854775807));
}

TEST_F(CheckpointStoreTest, RepublishIsAlreadyExistsAndKeepsTheOriginal) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 10), IsOk());
  const std::string model_path =
      store.VersionPath("names", 10) + "/model.safetensors";
  const std::string before = ReadBytes(model_path);
  ModelCheckpoint other = TestModel(11);
  const ParameterLayout layout(other.config);
  EXPECT_THAT(store.Publish("names", 10, other, nullptr, layout),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("already has version 10")));
  EXPECT_EQ(ReadBytes(model_path), before);
  EXPECT_THAT(Entries(root_ + "/names"), ElementsAre("10"));  // no temp left
}

TEST_F(CheckpointStoreTest, ModelOnlyExport) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 4, /*with_optimizer=*/false), IsOk());
  EXPECT_THAT(Entries(store.VersionPath("names", 4)),
              ElementsAre("manifest.json", "model.safetensors"));
  EXPECT_THAT(store.LoadModel("names", 4), IsOk());
  const ParameterLayout layout(TestModel().config);
  EXPECT_THAT(store.LoadOptimizer("names", 4, layout),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("optimizer.safetensors")));
}

TEST_F(CheckpointStoreTest, MissingThingsAreNotFound) {
  CheckpointStore store(root_);
  EXPECT_THAT(store.ListModels(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(store.ListVersions("names"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("names")));
  ASSERT_THAT(PublishVersion(store, 1), IsOk());
  EXPECT_THAT(store.LoadModel("names", 2),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("version 2")));
  EXPECT_THAT(store.LoadModel("other", 1),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  const ParameterLayout layout(TestModel().config);
  EXPECT_THAT(store.LoadOptimizer("names", 2, layout),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(CheckpointStoreTest, CreatesNestedRootsAndListsSeveralModels) {
  CheckpointStore store(dir_ + "/a/b/c");
  ASSERT_THAT(PublishVersion(store, 1, true, "zeta"), IsOk());
  ASSERT_THAT(PublishVersion(store, 1, true, "alpha"), IsOk());
  ASSERT_EQ(::mkdir((dir_ + "/a/b/c/.hidden").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir_ + "/a/b/c/bad name").c_str(), 0755), 0);
  WriteBytes(dir_ + "/a/b/c/file", "x");
  const auto models = store.ListModels();
  ASSERT_THAT(models, IsOk());
  EXPECT_THAT(*models, ElementsAre("alpha", "zeta"));
}

TEST_F(CheckpointStoreTest, TruncatedFileIsDataLoss) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 3), IsOk());
  const std::string dir = store.VersionPath("names", 3);
  const std::string bytes = ReadBytes(dir + "/model.safetensors");
  WriteBytes(dir + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
  EXPECT_THAT(
      store.LoadModel("names", 3),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.safetensors")));
  // The optimizer file is untouched and still loads.
  const ParameterLayout layout(TestModel().config);
  EXPECT_THAT(store.LoadOptimizer("names", 3, layout), IsOk());
  const std::string opt = ReadBytes(dir + "/optimizer.safetensors");
  WriteBytes(dir + "/optimizer.safetensors", opt.substr(0, opt.size() - 1));
  EXPECT_THAT(store.LoadOptimizer("names", 3, layout),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("optimizer.safetensors")));
}

TEST_F(CheckpointStoreTest, GrownFileIsDataLoss) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 3), IsOk());
  const std::string path = store.VersionPath("names", 3) + "/model.safetensors";
  WriteBytes(path, ReadBytes(path) + "extra");
  EXPECT_THAT(
      store.LoadModel("names", 3),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.safetensors")));
}

TEST_F(CheckpointStoreTest, FlippedByteIsDataLoss) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 3), IsOk());
  const std::string dir = store.VersionPath("names", 3);
  for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
    const std::string path = dir + "/" + file;
    const std::string original = ReadBytes(path);
    // A flip in the header and one in the data (which parses fine alone).
    for (size_t at : {size_t{20}, original.size() - 2}) {
      std::string bytes = original;
      bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
      WriteBytes(path, bytes);
      const ParameterLayout layout(TestModel().config);
      const absl::Status status =
          std::string(file) == "model.safetensors"
              ? store.LoadModel("names", 3).status()
              : store.LoadOptimizer("names", 3, layout).status();
      EXPECT_THAT(status,
                  StatusIs(absl::StatusCode::kDataLoss, HasSubstr("SHA-256")))
          << file << " byte " << at;
      EXPECT_THAT(status,
                  StatusIs(absl::StatusCode::kDataLoss, HasSubstr(file)));
    }
    WriteBytes(path, original);
  }
  EXPECT_THAT(store.LoadModel("names", 3), IsOk());
}

TEST_F(CheckpointStoreTest, EditedManifestIsDataLoss) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 3), IsOk());
  const std::string path = store.VersionPath("names", 3) + "/manifest.json";
  const std::string original = ReadBytes(path);
  nlohmann::json manifest = nlohmann::json::parse(original, nullptr, false);
  ASSERT_TRUE(manifest.is_object());

  nlohmann::json wrong_hash = manifest;
  wrong_hash["files"]["model.safetensors"]["sha256"] = *Sha256Hex("other");
  WriteBytes(path, wrong_hash.dump());
  EXPECT_THAT(store.LoadModel("names", 3),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("model.safetensors is corrupt: its SHA-256")));

  nlohmann::json wrong_size = manifest;
  wrong_size["files"]["model.safetensors"]["size"] =
      manifest["files"]["model.safetensors"]["size"].get<uint64_t>() + 1;
  WriteBytes(path, wrong_size.dump());
  EXPECT_THAT(
      store.LoadModel("names", 3),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.safetensors")));

  nlohmann::json wrong_version = manifest;
  wrong_version["version"] = 4;
  WriteBytes(path, wrong_version.dump());
  EXPECT_THAT(store.LoadModel("names", 3),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("version")));

  nlohmann::json no_entry = manifest;
  no_entry["files"].erase("model.safetensors");
  WriteBytes(path, no_entry.dump());
  EXPECT_THAT(store.LoadModel("names", 3),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("lists no model.safetensors")));

  for (const char* garbage : {"", "{", "[]", "{\"version\":3}",
                              "{\"version\":3,\"files\":{\"model.safetensors\""
                              ":{\"size\":-1,\"sha256\":\"x\"}}}"}) {
    WriteBytes(path, garbage);
    EXPECT_THAT(store.LoadModel("names", 3),
                StatusIs(absl::StatusCode::kDataLoss, ::testing::_))
        << garbage;
  }
  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_THAT(store.LoadModel("names", 3),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("manifest")));

  WriteBytes(path, original);
  EXPECT_THAT(store.LoadModel("names", 3), IsOk());
}

TEST_F(CheckpointStoreTest, WrongShapeFileWithAMatchingManifestIsRejected) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 3), IsOk());
  const std::string dir = store.VersionPath("names", 3);
  // A well-formed safetensors file whose wte is transposed, sealed in the
  // manifest as if it had been published that way.
  const ModelCheckpoint model = TestModel(3);
  const ParameterLayout layout(model.config);
  SafetensorsWriter writer;
  for (const TensorSpec& spec : layout.tensors()) {
    const std::vector<int64_t> shape =
        spec.name == "wte" ? std::vector<int64_t>{spec.cols, spec.rows}
                           : std::vector<int64_t>{spec.rows, spec.cols};
    ASSERT_THAT(
        writer.AddF32(spec.name, shape,
                      absl::MakeConstSpan(model.parameters.data() + spec.offset,
                                          spec.size())),
        IsOk());
  }
  ASSERT_THAT(writer.AddMetadata("microgpt.config", model.config.ToJson()),
              IsOk());
  ASSERT_THAT(writer.AddMetadata("microgpt.vocab", model.tokenizer.ToJson()),
              IsOk());
  ASSERT_THAT(writer.AddMetadata("microgpt.step", "3"), IsOk());
  ASSERT_THAT(writer.AddMetadata("microgpt.loss", "2.5"), IsOk());
  WriteBytes(dir + "/model.safetensors", writer.Serialize());
  ASSERT_NO_FATAL_FAILURE(ResealManifest(dir, "model.safetensors"));
  EXPECT_THAT(store.LoadModel("names", 3),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor \"wte\" has shape [8, 10], expected "
                                 "[10, 8]")));

  // The optimizer state checked against another model's layout.
  ModelConfig wider = model.config;
  wider.n_embd = 16;
  EXPECT_THAT(store.LoadOptimizer("names", 3, ParameterLayout(wider)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("expected [10, 16]")));
}

TEST_F(CheckpointStoreTest, TemporaryDirectoriesAreHiddenAndRemoved) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 1), IsOk());
  // What a publisher that died mid-way leaves behind.
  const std::string model_dir = root_ + "/names";
  const std::string temp = model_dir + "/.tmp-2-12345-0123456789abcdef";
  ASSERT_EQ(::mkdir(temp.c_str(), 0755), 0);
  WriteBytes(temp + "/model.safetensors", "partial");
  ASSERT_EQ(::mkdir((temp + "/nested").c_str(), 0755), 0);
  const std::string other_temp = root_ + "/other/.tmp-9-1-ff";
  ASSERT_EQ(::mkdir((root_ + "/other").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(other_temp.c_str(), 0755), 0);

  const auto versions = store.ListVersions("names");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(*versions, ElementsAre(1));
  const auto other_versions = store.ListVersions("other");
  ASSERT_THAT(other_versions, IsOk());
  EXPECT_THAT(*other_versions, IsEmpty());

  ASSERT_THAT(store.RemoveTemporaryDirectories(), IsOk());
  EXPECT_FALSE(Exists(temp));
  EXPECT_FALSE(Exists(other_temp));
  EXPECT_THAT(Entries(model_dir), ElementsAre("1"));
  EXPECT_THAT(store.LoadModel("names", 1), IsOk());
}

TEST_F(CheckpointStoreTest, TemporaryDirectoryOfALivePublisherIsKept) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 1), IsOk());
  // A publisher in this or another process holds an flock on its temporary
  // directory until the rename; cleaning up must not pull it away.
  const std::string live = root_ + "/names/.tmp-2-777-00aa";
  const std::string dead = root_ + "/names/.tmp-3-778-00bb";
  ASSERT_EQ(::mkdir(live.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(dead.c_str(), 0755), 0);
  const int fd = ::open(live.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  ASSERT_THAT(store.RemoveTemporaryDirectories(), IsOk());
  EXPECT_TRUE(Exists(live));
  EXPECT_FALSE(Exists(dead));
  ::close(fd);  // the publisher died: now it is an orphan
  ASSERT_THAT(store.RemoveTemporaryDirectories(), IsOk());
  EXPECT_FALSE(Exists(live));
  EXPECT_THAT(Entries(root_ + "/names"), ElementsAre("1"));
}

TEST_F(CheckpointStoreTest, RemoveTemporaryDirectoriesWithoutARootIsOk) {
  CheckpointStore store(root_);
  EXPECT_THAT(store.RemoveTemporaryDirectories(), IsOk());
}

TEST_F(CheckpointStoreTest, InvalidModelNamesAreRejectedEverywhere) {
  CheckpointStore store(root_);
  const ModelCheckpoint model = TestModel();
  const ParameterLayout layout(model.config);
  for (const char* name : {"", "../escape", "a/b", ".", "..", ".tmp-1"}) {
    EXPECT_THAT(store.Publish(name, 1, model, nullptr, layout),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << name;
    EXPECT_THAT(store.ListVersions(name),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << name;
    EXPECT_THAT(store.LoadModel(name, 1),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << name;
    EXPECT_THAT(store.LoadOptimizer(name, 1, layout),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << name;
  }
  EXPECT_FALSE(Exists(root_));
  EXPECT_FALSE(Exists(dir_ + "/escape"));
}

TEST_F(CheckpointStoreTest, InconsistentCheckpointsAreNotPublished) {
  CheckpointStore store(root_);
  const ModelCheckpoint model = TestModel();
  const ParameterLayout layout(model.config);
  const OptimizerCheckpoint optimizer = TestOptimizer(layout);

  EXPECT_THAT(
      store.Publish("names", 0, model, nullptr, layout),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version")));
  EXPECT_THAT(
      store.Publish("names", -3, model, nullptr, layout),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version")));

  ModelCheckpoint short_model = model;
  short_model.parameters.pop_back();
  EXPECT_THAT(
      store.Publish("names", 1, short_model, nullptr, layout),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parameters")));

  ModelConfig other = model.config;
  other.n_embd = 16;
  EXPECT_THAT(
      store.Publish("names", 1, model, &optimizer, ParameterLayout(other)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layout")));

  OptimizerCheckpoint bad_cursor = optimizer;
  bad_cursor.data_cursor = 4;
  EXPECT_THAT(
      store.Publish("names", 1, model, &bad_cursor, layout),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data_cursor")));

  OptimizerCheckpoint bad_order = optimizer;
  bad_order.data_order[1] = -1;
  EXPECT_THAT(
      store.Publish("names", 1, model, &bad_order, layout),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data_order")));

  OptimizerCheckpoint short_moments = optimizer;
  short_moments.v.resize(3);
  EXPECT_THAT(
      store.Publish("names", 1, model, &short_moments, layout),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("moments")));
  EXPECT_FALSE(Exists(root_));
}

TEST_F(CheckpointStoreTest, ExtraFilesAreListedAndVerified) {
  CheckpointStore store(root_);
  const ModelCheckpoint model = TestModel(5);
  const ParameterLayout layout(model.config);
  ASSERT_THAT(store.Publish("names", 5, model, nullptr, layout,
                            {{"loss.csv", "step,loss,smoothed\n1,3,3\n"}}),
              IsOk());
  EXPECT_THAT(Entries(root_ + "/names/5"),
              ElementsAre("loss.csv", "manifest.json", "model.safetensors"));
  absl::StatusOr<std::string> csv = store.LoadExtraFile("names", 5, "loss.csv");
  ASSERT_THAT(csv.status(), IsOk());
  EXPECT_EQ(*csv, "step,loss,smoothed\n1,3,3\n");
  EXPECT_THAT(store.LoadModel("names", 5).status(), IsOk());
  EXPECT_THAT(store.LoadExtraFile("names", 5, "other.csv").status(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  WriteBytes(root_ + "/names/5/loss.csv", "step,loss,smoothed\n1,9,9\n");
  EXPECT_THAT(store.LoadExtraFile("names", 5, "loss.csv").status(),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  for (const char* bad :
       {"", "manifest.json", "model.safetensors", "a/b", ".hidden"}) {
    EXPECT_THAT(store.Publish("names", 6, model, nullptr, layout, {{bad, "x"}}),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << bad;
  }
}

RetentionPolicy Keep(int64_t versions,
                     absl::Duration lease_ttl = absl::Minutes(1)) {
  RetentionPolicy policy;
  policy.keep_versions = versions;
  policy.lease_ttl = lease_ttl;
  return policy;
}

// Sets a file's modification time `age` in the past.
void Age(const std::string& path, absl::Duration age) {
  const timespec when = absl::ToTimespec(absl::Now() - age);
  const timespec times[2] = {when, when};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

TEST_F(CheckpointStoreTest, RetentionKeepsTheNewestAndLeasedVersions) {
  CheckpointStore store(root_, Keep(2));
  for (int64_t v = 1; v <= 5; ++v)
    ASSERT_THAT(PublishVersion(store, v), IsOk());
  ASSERT_THAT(PublishVersion(store, 1, true, "other"), IsOk());
  ASSERT_THAT(store.WriteLease("gen-a", {{"names", {2}}, {"other", {1}}}),
              IsOk());
  ASSERT_THAT(store.LeasedVersions("names"), IsOk());
  EXPECT_THAT(*store.LeasedVersions("names"), ElementsAre(2));

  absl::StatusOr<std::vector<int64_t>> deleted = store.ApplyRetention("names");
  ASSERT_THAT(deleted, IsOk());
  EXPECT_THAT(*deleted, ElementsAre(1, 3));
  EXPECT_THAT(*store.ListVersions("names"), ElementsAre(2, 4, 5));
  // Deleted through a hidden name: nothing else is left in the directory.
  EXPECT_THAT(Entries(root_ + "/names"), ElementsAre("2", "4", "5"));
  for (int64_t v : {2, 4, 5}) EXPECT_THAT(store.LoadModel("names", v), IsOk());

  // Once the lease is gone, so is the version it protected.
  ASSERT_THAT(store.RemoveLease("gen-a"), IsOk());
  ASSERT_THAT(store.RemoveLease("gen-a"), IsOk());
  deleted = store.ApplyRetention("names");
  ASSERT_THAT(deleted, IsOk());
  EXPECT_THAT(*deleted, ElementsAre(2));
  EXPECT_THAT(*store.ListVersions("names"), ElementsAre(4, 5));
  EXPECT_THAT(*store.ListVersions("other"), ElementsAre(1));
}

TEST_F(CheckpointStoreTest, ExpiredLeasesProtectNothingAndAreDropped) {
  CheckpointStore store(root_, Keep(1, absl::Seconds(30)));
  for (int64_t v = 1; v <= 3; ++v)
    ASSERT_THAT(PublishVersion(store, v), IsOk());
  ASSERT_THAT(store.WriteLease("fresh", {{"names", {2}}}), IsOk());
  ASSERT_THAT(store.WriteLease("dead", {{"names", {1}}}), IsOk());
  Age(root_ + "/.leases/dead", absl::Seconds(31));
  absl::StatusOr<std::vector<int64_t>> deleted = store.ApplyRetention("names");
  ASSERT_THAT(deleted, IsOk());
  EXPECT_THAT(*deleted, ElementsAre(1));
  EXPECT_THAT(*store.ListVersions("names"), ElementsAre(2, 3));
  EXPECT_THAT(Entries(root_ + "/.leases"), ElementsAre("fresh"));
}

TEST_F(CheckpointStoreTest, UnreadableFreshLeaseStopsRetention) {
  CheckpointStore store(root_, Keep(1));
  for (int64_t v = 1; v <= 3; ++v)
    ASSERT_THAT(PublishVersion(store, v), IsOk());
  ASSERT_EQ(::mkdir((root_ + "/.leases").c_str(), 0755), 0);
  WriteBytes(root_ + "/.leases/garbled", "{\"models\": {\"names\": [\"2\"");
  EXPECT_THAT(store.ApplyRetention("names"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(".leases/garbled")));
  EXPECT_THAT(*store.ListVersions("names"), ElementsAre(1, 2, 3));
  // The root's lease directory is not a model.
  EXPECT_THAT(*store.ListModels(), ElementsAre("names"));
}

TEST_F(CheckpointStoreTest, RetentionOffOrNotNeededDeletesNothing) {
  CheckpointStore keep_all(root_);
  for (int64_t v = 1; v <= 3; ++v) {
    ASSERT_THAT(PublishVersion(keep_all, v), IsOk());
  }
  EXPECT_THAT(*keep_all.ApplyRetention("names"), IsEmpty());
  CheckpointStore keep_three(root_, Keep(3));
  EXPECT_THAT(*keep_three.ApplyRetention("names"), IsEmpty());
  EXPECT_THAT(*keep_three.ListVersions("names"), ElementsAre(1, 2, 3));
  EXPECT_THAT(keep_three.WriteLease("a/b", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lease")));
}

// A root on a tiny tmpfs of its own, in a private mount namespace (so it
// vanishes with the process). Skips when the process may not mount.
class FullFileSystemTest : public CheckpointStoreTest {
 protected:
  void SetUp() override {
    CheckpointStoreTest::SetUp();
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      GTEST_SKIP() << "cannot make a private mount namespace ("
                   << std::strerror(errno) << "); needs CAP_SYS_ADMIN";
    }
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    if (::mount("tmpfs", root_.c_str(), "tmpfs", 0, "size=256k") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(root_.c_str(), MNT_DETACH);
    CheckpointStoreTest::TearDown();
  }

  // Fills the file system until a write fails with ENOSPC.
  void Fill() {
    const int fd =
        ::open((root_ + "/filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    const std::string block(4096, 'x');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    EXPECT_EQ(errno, ENOSPC);
    ::close(fd);
  }

  bool mounted_ = false;
};

TEST_F(FullFileSystemTest, DiskFullFailsThePublishAndKeepsEarlierVersions) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 1), IsOk());
  Fill();
  EXPECT_THAT(PublishVersion(store, 2),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::AllOf(HasSubstr(root_ + "/names/.tmp-2-"),
                                        HasSubstr("No space left on device"))));
  EXPECT_THAT(*store.ListVersions("names"), ElementsAre(1));
  EXPECT_THAT(Entries(root_ + "/names"), ElementsAre("1"));  // no leftovers
  EXPECT_THAT(store.LoadModel("names", 1), IsOk());
  const ModelCheckpoint model = TestModel(1);
  EXPECT_THAT(store.LoadOptimizer("names", 1, ParameterLayout(model.config)),
              IsOk());

  // Space again: publishing works again.
  ASSERT_EQ(::unlink((root_ + "/filler").c_str()), 0);
  EXPECT_THAT(PublishVersion(store, 2), IsOk());
}

TEST_F(FullFileSystemTest, ReadOnlyRootFailsThePublishAndKeepsEarlierVersions) {
  CheckpointStore store(root_);
  ASSERT_THAT(PublishVersion(store, 1), IsOk());
  ASSERT_EQ(
      ::mount(nullptr, root_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr),
      0)
      << std::strerror(errno);
  EXPECT_THAT(PublishVersion(store, 2),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       ::testing::AllOf(HasSubstr(root_ + "/names/.tmp-2-"),
                                        HasSubstr("Read-only file system"))));
  EXPECT_THAT(*store.ListVersions("names"), ElementsAre(1));
  EXPECT_THAT(store.LoadModel("names", 1), IsOk());
}

}  // namespace
}  // namespace microgpt
