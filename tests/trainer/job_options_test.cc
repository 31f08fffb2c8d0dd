#include "trainer/job_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

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
  EXPECT_FALSE(options->resume);
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
  EXPECT_EQ(options->documents.size(), 14u);
}

TEST(JobOptionsTest, InlineDocumentsAreStrippedAndEmptyOnesDropped) {
  v1::StartTrainingRequest request;
  request.set_model("m");
  for (const char* d : {"  emma ", "", "   ", "ava\r"}) {
    request.mutable_inline_dataset()->add_documents(d);
  }
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->documents, ElementsAre("emma", "ava"));
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
  };
  for (const Case& c : cases) {
    v1::StartTrainingRequest request = SmallRequest("m", 10);
    c.mutate(request);
    EXPECT_THAT(JobOptionsFromRequest(request).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, c.field))
        << c.name;
  }
}

TEST(JobOptionsTest, ResumeIgnoresTheConfig) {
  v1::StartTrainingRequest request = SmallRequest("m", 10);
  request.mutable_config()->set_n_head(3);  // invalid, but ignored
  request.set_resume(true);
  auto options = JobOptionsFromRequest(request);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->resume);
}

}  // namespace
}  // namespace microgpt
