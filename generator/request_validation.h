// Validation of Generator requests: turns a GenerateRequest into the
// sequences it asks for on one model version, or INVALID_ARGUMENT naming the
// offending field and its limit. ListModelsRequest has no fields to check.
//
//   absl::StatusOr<std::vector<SequenceSpec>> specs =
//       MakeSequenceSpecs(request, servable, seed);
//   if (!specs.ok()) return specs.status();  // INVALID_ARGUMENT
#ifndef MICROGPT_GENERATOR_REQUEST_VALIDATION_H_
#define MICROGPT_GENERATOR_REQUEST_VALIDATION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "generator/model_manager.h"
#include "generator/scheduler.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// Largest num_samples of one request.
inline constexpr int kMaxSamplesPerRequest = 64;
// Temperature when the request leaves it unset (the reference).
inline constexpr float kDefaultTemperature = 0.5f;

// The sequences a request asks for on `servable`, or INVALID_ARGUMENT naming
// the offending field. `random_seed` is used when the request has no seed;
// sample i gets seed + i.
absl::StatusOr<std::vector<SequenceSpec>> MakeSequenceSpecs(
    const v1::GenerateRequest& request,
    const std::shared_ptr<const ServableModel>& servable, uint64_t random_seed);

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_REQUEST_VALIDATION_H_
