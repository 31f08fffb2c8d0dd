// The job the end-to-end tests train: "words", 400 made-up words of two or
// three syllables, trained through the Trainer API in batches of 8 with a
// version published every 100 steps.
#ifndef MICROGPT_TESTS_E2E_WORDS_JOB_H_
#define MICROGPT_TESTS_E2E_WORDS_JOB_H_

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "microgpt/client.h"

namespace microgpt {

// Writes the dataset, one word per line, to `file`.
inline void WriteWordsDataset(const std::filesystem::path& file) {
  std::ofstream data(file);
  const char* syllables[] = {"ka", "mi", "lo", "ne", "ra", "su", "ti", "vo"};
  for (int i = 0; i < 400; ++i) {
    data << syllables[i % 8] << syllables[(i / 8) % 8]
         << (i % 3 ? syllables[(i / 64) % 8] : "") << "\n";
  }
}

struct WordsJob {
  absl::Status status;  // of StartTraining, then of WatchTraining
  std::string job_id;
  std::vector<v1::TrainingEvent> events;  // every event watched
};

// Starts "words" on `trainer` (words.txt under its --data_root) to `steps`,
// resuming from the latest version when `resume`, and watches it to the end.
inline WordsJob TrainWords(TrainerClient& trainer, int64_t steps, bool resume) {
  v1::StartTrainingRequest request;
  request.set_model("words");
  request.set_dataset_path("words.txt");
  request.set_steps(steps);
  request.set_batch_size(8);
  request.set_checkpoint_every(100);
  request.set_resume(resume);
  WordsJob job;
  absl::StatusOr<std::string> id = trainer.Start(request);
  if (!id.ok()) {
    job.status = id.status();
    return job;
  }
  job.job_id = *id;
  job.status = trainer.Watch(*id, [&](const v1::TrainingEvent& event) {
    job.events.push_back(event);
    return true;
  });
  return job;
}

}  // namespace microgpt

#endif  // MICROGPT_TESTS_E2E_WORDS_JOB_H_
