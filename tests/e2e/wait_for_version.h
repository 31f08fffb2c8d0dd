// WaitForVersion: what every end-to-end test waits on before it generates,
// the generator listing a model version.
#ifndef MICROGPT_TESTS_E2E_WAIT_FOR_VERSION_H_
#define MICROGPT_TESTS_E2E_WAIT_FOR_VERSION_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "microgpt/client.h"

namespace microgpt {

// True once `generator` lists `version` of `model`; false after `timeout`.
inline bool WaitForVersion(GeneratorClient& generator, absl::string_view model,
                           int64_t version, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::ListModelsResponse> models = generator.ListModels();
    if (models.ok()) {
      for (const v1::ModelInfo& info : models->models()) {
        for (const v1::ModelVersion& v : info.versions()) {
          if (info.name() == model && v.version() == version) return true;
        }
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

}  // namespace microgpt

#endif  // MICROGPT_TESTS_E2E_WAIT_FOR_VERSION_H_
