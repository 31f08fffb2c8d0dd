#include "trainer/job_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "tests/trainer/trainer_test_util.h"

namespace microgpt {
namespace {

using ::microgpt::testing::SmallRequest;
using ::microgpt::testing::StatusIs;
using ::testing::ElementsAre;

TEST(JobOptionsTest, ZeroFieldsTakeTheDefaults) {
  v1::StartTrainingRequest request;
  request.set_model("names");
  request.set_dataset_path("names.txt");
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->model, "names");
  EXPECT_EQ(options->dataset_file, "names.txt");
  EXPECT_EQ(options->training.steps, 1000);
  EXPECT_EQ(options->training.batch_size, 1);
  EXPECT_FLOAT_EQ(options->training.adam.lr, 0.01f);
  EXPECT_EQ(options->training.adam.num_steps, 1000);
  EXPECT_EQ(options->training.seed, 42u);
  EXPECT_EQ(options->training.config.n_embd, 16);
  EXPECT_EQ(options->training.config.n_head, 4);
  EXPECT_EQ(options->training.config.n_layer, 1);
  EXPECT_EQ(options->training.config.block_size, 16);
  EXPECT_EQ(options->checkpoint_every, 0);
  EXPECT_EQ(options->start, RunStart::kNew);
  EXPECT_FALSE(options->discard_on_cancel);
}

TEST(JobOptionsTest, SetFieldsAreUsed) {
  v1::StartTrainingRequest request = SmallRequest("m", 77);
  request.set_batch_size(4);
  request.set_learning_rate(0.5f);
  request.set_seed(7);
  request.set_checkpoint_every(10);
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->training.steps, 77);
  EXPECT_EQ(options->training.adam.num_steps, 77);
  EXPECT_EQ(options->training.batch_size, 4);
  EXPECT_FLOAT_EQ(options->training.adam.lr, 0.5f);
  EXPECT_EQ(options->training.seed, 7u);
  EXPECT_EQ(options->training.config.n_embd, 8);
  EXPECT_EQ(options->training.config.n_head, 2);
  EXPECT_EQ(options->checkpoint_every, 10);
  EXPECT_TRUE(options->dataset_file.empty());
  EXPECT_EQ(options->dataset.documents.size(), 14u);
}

TEST(JobOptionsTest, InlineDocumentsAreStrippedAndEmptyOnesDropped) {
  v1::StartTrainingRequest request;
  request.set_model("m");
  for (const char* d : {"  emma ", "", "   ", "ava\r"}) {
    request.mutable_inline_dataset()->add_documents(d);
  }
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->dataset.documents, ElementsAre("emma", "ava"));
}

TEST(JobOptionsTest, ErrorsNameTheField) {
  struct Case {
    const char* name;
    void (*mutate)(v1::StartTrainingRequest&);
    const char* field;
  };
  const Case cases[] = {
      {"empty model", [](auto& r) { r.set_model(""); }, "model"},
      {"path model", [](auto& r) { r.set_model("../evil"); }, "model"},
      {"no dataset", [](auto& r) { r.clear_inline_dataset(); }, "dataset"},
      {"empty path", [](auto& r) { r.set_dataset_path(""); }, "dataset_path"},
      {"empty inline",
       [](auto& r) { r.mutable_inline_dataset()->clear_documents(); },
       "inline_dataset"},
      {"newline in document",
       [](auto& r) { r.mutable_inline_dataset()->add_documents("a\nb"); },
       "inline_dataset.documents[14]"},
      {"n_head divides n_embd",
       [](auto& r) { r.mutable_config()->set_n_head(3); }, "n_head"},
      {"negative n_embd", [](auto& r) { r.mutable_config()->set_n_embd(-1); },
       "config.n_embd"},
      {"huge n_layer",
       [](auto& r) { r.mutable_config()->set_n_layer(1 << 20); }, "n_layer"},
      {"negative steps", [](auto& r) { r.set_steps(-1); }, "steps"},
      {"huge steps",
       [](auto& r) { r.set_steps(std::numeric_limits<int64_t>::max()); },
       "steps"},
      {"negative batch", [](auto& r) { r.set_batch_size(-2); }, "batch_size"},
      {"huge batch", [](auto& r) { r.set_batch_size(1 << 30); }, "batch_size"},
      {"zero lr", [](auto& r) { r.set_learning_rate(0); }, "learning_rate"},
      {"negative lr", [](auto& r) { r.set_learning_rate(-0.1f); },
       "learning_rate"},
      {"nan lr",
       [](auto& r) {
         r.set_learning_rate(std::numeric_limits<float>::quiet_NaN());
       },
       "learning_rate"},
      {"inf lr",
       [](auto& r) {
         r.set_learning_rate(std::numeric_limits<float>::infinity());
       },
       "learning_rate"},
      {"negative checkpoint_every", [](auto& r) { r.set_checkpoint_every(-5); },
       "checkpoint_every"},
      {"unknown format",
       [](auto& r) { r.set_format(static_cast<v1::DatasetFormat>(7)); },
       "format 7"},
      {"text format with documents",
       [](auto& r) { r.set_format(v1::DATASET_FORMAT_TEXT); },
       "TEXT format takes inline_dataset.text"},
      {"documents format with text",
       [](auto& r) { r.mutable_inline_dataset()->set_text("abc"); },
       "DOCUMENTS format takes inline_dataset.documents"},
      {"negative val_fraction", [](auto& r) { r.set_val_fraction(-0.1f); },
       "val_fraction"},
      {"val_fraction over half", [](auto& r) { r.set_val_fraction(0.6f); },
       "val_fraction"},
      {"nan val_fraction",
       [](auto& r) {
         r.set_val_fraction(std::numeric_limits<float>::quiet_NaN());
       },
       "val_fraction"},
      {"negative eval_every",
       [](auto& r) {
         r.set_val_fraction(0.1f);
         r.set_eval_every(-1);
       },
       "eval_every"},
      {"eval_every without validation", [](auto& r) { r.set_eval_every(10); },
       "eval_every needs val_fraction"},
      {"init_from with resume",
       [](auto& r) {
         r.set_init_from("names");
         r.set_resume(true);
       },
       "init_from and resume"},
      {"init_from with config", [](auto& r) { r.set_init_from("names"); },
       "config must be unset with init_from"},
      {"init_from bad name",
       [](auto& r) {
         r.clear_config();
         r.set_init_from("../x");
       },
       "init_from"},
      {"init_from bad version",
       [](auto& r) {
         r.clear_config();
         r.set_init_from("names:0");
       },
       "MODEL:VERSION with VERSION >= 1"},
      {"init_from version not a number",
       [](auto& r) {
         r.clear_config();
         r.set_init_from("names:latest");
       },
       "MODEL:VERSION"},
      {"zero init_std", [](auto& r) { r.set_init_std(0); }, "init_std"},
      {"huge init_std", [](auto& r) { r.set_init_std(2); }, "init_std"},
      {"unknown lr_schedule",
       [](auto& r) {
         r.set_lr_schedule(static_cast<v1::LearningRateSchedule>(9));
       },
       "lr_schedule 9"},
      {"warmup as long as the run", [](auto& r) { r.set_warmup_steps(10); },
       "warmup_steps must be in [0, steps = 10)"},
      {"negative warmup", [](auto& r) { r.set_warmup_steps(-1); },
       "warmup_steps"},
      {"min_learning_rate above learning_rate",
       [](auto& r) { r.set_min_learning_rate(0.5f); }, "min_learning_rate"},
      {"negative min_learning_rate",
       [](auto& r) { r.set_min_learning_rate(-1); }, "min_learning_rate"},
      {"negative grad_clip", [](auto& r) { r.set_grad_clip(-1); }, "grad_clip"},
      {"inf grad_clip",
       [](auto& r) { r.set_grad_clip(std::numeric_limits<float>::infinity()); },
       "grad_clip"},
  };
  for (const Case& c : cases) {
    v1::StartTrainingRequest request = SmallRequest("m", 10);
    c.mutate(request);
    EXPECT_THAT(JobOptionsFromRequest(request).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, c.field))
        << c.name;
  }
}

TEST(JobOptionsTest, InlineDatasetLimitsNameTheLimit) {
  TrainingLimits limits;
  limits.max_dataset_bytes = 100;
  limits.max_documents = 20;
  limits.max_document_bytes = 12;
  v1::StartTrainingRequest request = SmallRequest("m", 10);  // 14, 79 bytes
  ASSERT_TRUE(JobOptionsFromRequest(request, limits).ok());
  EXPECT_EQ(JobOptionsFromRequest(request, limits)->limits.max_documents, 20);

  v1::StartTrainingRequest long_document = request;
  long_document.mutable_inline_dataset()->add_documents("  abcdefghijklm ");
  EXPECT_THAT(JobOptionsFromRequest(long_document, limits).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "inline_dataset: document 14 has 13 bytes, more than "
                       "the limit of 12"));
  v1::StartTrainingRequest many = request;
  for (int i = 0; i < 7; ++i) many.mutable_inline_dataset()->add_documents("");
  EXPECT_THAT(JobOptionsFromRequest(many, limits).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "inline_dataset has 21 documents, more than the limit "
                       "of 20"));
  v1::StartTrainingRequest large = request;
  large.mutable_inline_dataset()->add_documents(std::string(22, ' '));
  EXPECT_THAT(JobOptionsFromRequest(large, limits).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "inline_dataset has 101 bytes, more than the limit of "
                       "100"));
}

TEST(JobOptionsTest, CheckDatasetNamesTheField) {
  TrainingLimits limits;
  limits.max_dataset_bytes = 10;
  limits.max_documents = 3;
  limits.max_document_bytes = 6;
  EXPECT_TRUE(
      CheckDataset(DocumentsDataset({"abcdef", "abcd"}), limits, "dataset_path")
          .ok());
  EXPECT_THAT(CheckDataset(DocumentsDataset({"abcdef", "abcdefg"}), limits,
                           "dataset_path"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dataset_path: document 1 has 7 bytes"));
  EXPECT_THAT(CheckDataset(DocumentsDataset({"a", "b", "c", "d"}), limits,
                           "dataset_path"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dataset_path has 4 documents"));
  EXPECT_THAT(CheckDataset(DocumentsDataset({"abcdef", "abcde"}), limits,
                           "dataset_path"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dataset_path has 11 bytes of documents"));
}

TEST(JobOptionsTest, EstimateTrainingBytesCountsWeightsAdamAndActivations) {
  ModelConfig config;  // n_embd 16, n_head 4, n_layer 1, block_size 16
  config.vocab_size = 27;
  ASSERT_EQ(config.num_parameters(), 4192);
  // Floats: 4 x 4192 (weights, gradients, m, v); the layer's activations
  // 16 x (10 x 16 + 2) + 4 heads x 16 x 16; the shared ones
  // 16 x (12 x 16 + 3 x 27 + 1) + the thread's 4 heads x 16 x 16 scratch.
  EXPECT_EQ(EstimateTrainingBytes(config, 1, 1),
            4 * (16768 + 2592 + 1024 + 4384 + 1024));
  // A second document doubles the activations, a second thread adds a
  // gradient copy and a scratch.
  EXPECT_EQ(EstimateTrainingBytes(config, 2, 1),
            4 * (16768 + 2 * (2592 + 1024 + 4384) + 1024));
  EXPECT_EQ(EstimateTrainingBytes(config, 1, 2),
            4 * (16768 + 4192 + 2592 + 1024 + 4384 + 2 * 1024));
  // The largest sizes the validation allows do not overflow.
  ModelConfig largest{kMaxEmbd, 64, kMaxLayers, kMaxBlockSize, kMaxVocabSize};
  EXPECT_GT(EstimateTrainingBytes(largest, 4096, 64), int64_t{1} << 48);
}

TEST(JobOptionsTest, ConfigBeyondTheMemoryBudgetIsResourceExhausted) {
  TrainingLimits limits;
  limits.max_training_bytes = 103168;  // exactly the default model, batch 1
  v1::StartTrainingRequest request;
  request.set_model("m");
  // 26 letters + BOS: vocab_size 27, as in the estimate above.
  request.mutable_inline_dataset()->add_documents("abcdefghijklmnopqrstuvwxyz");
  ASSERT_TRUE(JobOptionsFromRequest(request, limits).ok());
  request.set_batch_size(2);
  EXPECT_THAT(JobOptionsFromRequest(request, limits).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       "n_embd 16, n_head 4, n_layer 1, block_size 16, "
                       "vocab_size 27, batch_size 2), more than this "
                       "trainer's limit of 103168 bytes"));
  // Resuming takes the sizes from the version: the job checks them then.
  request.set_resume(true);
  EXPECT_TRUE(JobOptionsFromRequest(request, limits).ok());
}

TEST(JobOptionsTest, JobIds) {
  EXPECT_TRUE(ValidateJobId("job-1-0badf00d").ok());
  EXPECT_TRUE(ValidateJobId(std::string(kMaxJobIdLength, 'x')).ok());
  for (const std::string& bad :
       {std::string(""), std::string(kMaxJobIdLength + 1, 'x'),
        std::string("job/1"), std::string("job 1"), std::string("job_1"),
        std::string("job\0001", 5)}) {
    EXPECT_THAT(ValidateJobId(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, "job_id"))
        << bad;
  }
}

TEST(JobOptionsTest, TextAndTrainingChoices) {
  v1::StartTrainingRequest request;
  request.set_model("m");
  request.set_format(v1::DATASET_FORMAT_TEXT);
  request.mutable_inline_dataset()->set_text("to be, or not\nto be");
  request.set_val_fraction(0.25f);
  request.set_eval_every(50);
  request.set_steps(200);
  request.set_init_std(0.02f);
  request.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_COSINE);
  request.set_warmup_steps(20);
  request.set_grad_clip(1);
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->dataset.format, DatasetFormat::kText);
  EXPECT_EQ(options->dataset.text, "to be, or not\nto be");
  EXPECT_FLOAT_EQ(options->training.val_fraction, 0.25f);
  EXPECT_EQ(options->eval_every, 50);
  EXPECT_FLOAT_EQ(options->training.init_std, 0.02f);
  EXPECT_EQ(options->training.adam.schedule, LearningRateSchedule::kCosine);
  EXPECT_EQ(options->training.adam.warmup_steps, 20);
  EXPECT_FLOAT_EQ(options->training.adam.min_lr, 0.001f);  // lr / 10
  EXPECT_FLOAT_EQ(options->training.grad_clip, 1);
  // The vocabulary counts the newline.
  EXPECT_EQ(options->training.config.vocab_size, 10);

  v1::StartTrainingRequest tune = SmallRequest("m", 10);
  tune.clear_config();
  tune.set_init_from("names:30");
  options = JobOptionsFromRequest(tune);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->init_from_model, "names");
  EXPECT_EQ(options->init_from_version, 30);
}

TEST(JobOptionsTest, StartModes) {
  v1::StartTrainingRequest request = SmallRequest("m", 10);
  EXPECT_EQ(JobOptionsFromRequest(request)->start, RunStart::kNew);
  request.set_resume(true);
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->start, RunStart::kResume);
  // The sizes given, for the job to compare with the checkpoint's.
  EXPECT_EQ(options->requested_sizes.n_embd, 8);
  EXPECT_EQ(options->requested_sizes.block_size, 8);
  request.set_resume(false);
  request.set_resume_if_exists(true);
  EXPECT_EQ(JobOptionsFromRequest(request)->start, RunStart::kResumeIfExists);
  request.set_resume(true);
  EXPECT_THAT(JobOptionsFromRequest(request).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "resume and resume_if_exists exclude each other"));
  request.set_resume(false);
  request.clear_config();
  request.set_init_from("names");
  EXPECT_THAT(
      JobOptionsFromRequest(request).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, "init_from and resume"));
  request.set_resume_if_exists(false);
  request.set_discard_on_cancel(true);
  options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->start, RunStart::kInitFrom);
  EXPECT_TRUE(options->discard_on_cancel);
  EXPECT_FALSE(options->replace);
  request.set_replace(true);
  options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->replace);
  request.set_resume_if_exists(true);
  EXPECT_THAT(JobOptionsFromRequest(request).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "replace and resume (or resume_if_exists) exclude"));
  request.set_resume_if_exists(false);
  request.set_init_from("");
  request.set_resume(true);
  EXPECT_THAT(
      JobOptionsFromRequest(request).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, "replace and resume"));
}

}  // namespace
}  // namespace microgpt
