// The lower-case name of a training job's state, as logs and the
// microgpt_trainer_job_state metric label show it: "running", "succeeded",
// "failed", "cancelled" ("unspecified" for anything else).
#ifndef MICROGPT_TRAINER_JOB_STATE_H_
#define MICROGPT_TRAINER_JOB_STATE_H_

#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

inline const char* JobStateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_JOB_STATE_H_
