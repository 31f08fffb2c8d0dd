// libFuzzer target: a version directory's manifest.json as the checkpoint
// store reads it. The input is the manifest; the version directory holds a
// valid tiny model.safetensors, so a fuzzed manifest that still matches it
// (size and SHA-256) exercises the whole LoadModel path.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/checkpoint.h"
#include "common/checkpoint_store.h"
#include "fuzz/fuzz_util.h"

namespace {

struct Fixture {
  std::string root;
  std::string manifest_path;
  microgpt::CheckpointStore* store = nullptr;
};

Fixture* MakeFixture() {
  using namespace microgpt;
  auto* fixture = new Fixture;
  char tmpl[] = "/tmp/microgpt-manifest-fuzz-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) std::abort();
  fixture->root = tmpl;
  fixture->store = new CheckpointStore(fixture->root);
  const ModelCheckpoint model = fuzz::TinyCheckpoint();
  const ParameterLayout layout(model.config);
  if (!fixture->store->Publish("m", 1, model, nullptr, layout).ok()) {
    std::abort();
  }
  fixture->manifest_path =
      fixture->store->VersionPath("m", 1) + "/manifest.json";
  return fixture;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* const fixture = MakeFixture();
  {
    std::ofstream out(fixture->manifest_path,
                      std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data),
              static_cast<std::streamsize>(size));
  }
  (void)fixture->store->LoadModel("m", 1);
  (void)fixture->store->ListVersions("m");
  return 0;
}
