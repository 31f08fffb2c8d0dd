// libFuzzer target: the dataset loader and the tokenizer. The input is a
// dataset file; its vocabulary must encode and decode each of its documents
// exactly. The input as a prompt and as a tokenizer JSON must not crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/dataset.h"
#include "common/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microgpt;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<std::string>> docs = ParseDocuments(bytes);
  if (docs.ok()) {
    const Tokenizer tokenizer = Tokenizer::FromDocuments(*docs);
    for (const std::string& doc : *docs) {
      absl::StatusOr<std::vector<int>> ids = tokenizer.Encode(doc);
      if (!ids.ok()) __builtin_trap();  // its own vocabulary
      if (tokenizer.Decode(*ids) != doc) __builtin_trap();
      absl::StatusOr<std::vector<int>> framed = tokenizer.EncodeDocument(doc);
      if (!framed.ok() || framed->size() != ids->size() + 2) __builtin_trap();
    }
    absl::StatusOr<Tokenizer> reloaded =
        Tokenizer::FromJson(tokenizer.ToJson());
    if (!reloaded.ok() || !(*reloaded == tokenizer)) __builtin_trap();
    // The raw input as a prompt against that vocabulary.
    (void)tokenizer.Encode(bytes);
  }
  absl::StatusOr<Tokenizer> from_json = Tokenizer::FromJson(bytes);
  if (from_json.ok()) {
    (void)from_json->Encode(bytes);
    for (int id = -1; id <= from_json->vocab_size(); ++id) {
      (void)from_json->Decode(id);
    }
  }
  return 0;
}
