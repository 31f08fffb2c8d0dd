// The trainer's /metrics endpoint over a real Trainer service, and the loss
// curve (loss.csv) every published version carries.
#include "trainer/trainer_metrics.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint_store.h"
#include "common/loss_curve.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "tests/metrics_scrape.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/trainer_service.h"

namespace microgpt {
namespace {

using ::microgpt::testing::ExpectProcessMetrics;
using ::microgpt::testing::SampleValue;
using ::microgpt::testing::ScrapeMetrics;
using ::microgpt::testing::SmallRequest;
using ::microgpt::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

class TrainerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<TrainerMetrics>> metrics =
        TrainerMetrics::Start("127.0.0.1:0");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
    TrainerServiceOptions options;
    options.checkpoint_root = dir_.path();
    options.observer = metrics_.get();
    service_ = std::make_unique<TrainerServiceImpl>(options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Trainer::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                            grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    service_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now());
  }

  // Trains to the end; the final job.
  v1::TrainingJob Train(const v1::StartTrainingRequest& request) {
    grpc::ClientContext context;
    v1::StartTrainingResponse started;
    const grpc::Status status =
        stub_->StartTraining(&context, request, &started);
    EXPECT_TRUE(status.ok()) << status.error_message();
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    v1::TrainingJob job;
    while (absl::Now() < deadline) {
      grpc::ClientContext get_context;
      v1::GetTrainingRequest get;
      get.set_job_id(started.job_id());
      EXPECT_TRUE(stub_->GetTraining(&get_context, get, &job).ok());
      if (job.state() != v1::JOB_STATE_RUNNING) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return job;
  }

  LossCurve CurveOf(const std::string& model, int64_t version) {
    CheckpointStore store(dir_.path());
    absl::StatusOr<std::string> csv =
        store.LoadExtraFile(model, version, kLossCurveFile);
    EXPECT_TRUE(csv.ok()) << csv.status();
    absl::StatusOr<LossCurve> curve = ParseLossCsv(csv.value_or(""));
    EXPECT_TRUE(curve.ok()) << curve.status();
    return curve.value_or(LossCurve());
  }

  TempDir dir_;
  std::unique_ptr<TrainerMetrics> metrics_;  // the service's observer
  std::unique_ptr<TrainerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
};

// A job's series: `name{job_id="ID",model="MODEL"...}` (labels sorted by name).
std::string JobSeries(const std::string& name, const v1::TrainingJob& job,
                      const std::string& extra = "") {
  return absl::StrCat(name, "{job_id=\"", job.job_id(), "\",model=\"",
                      job.model(), "\"", extra, "}");
}

TEST_F(TrainerMetricsTest, SeriesExistAndMoveWithAJob) {
  const int port = metrics_->port();
  ASSERT_GT(port, 0);

  const std::string before = ScrapeMetrics(port);
  ASSERT_FALSE(before.empty());
  ExpectProcessMetrics(before, "trainer");
  // No job yet: no job series.
  EXPECT_THAT(before, Not(HasSubstr("microgpt_trainer_step{")));

  v1::StartTrainingRequest request = SmallRequest("tiny", 30);
  request.set_checkpoint_every(10);
  const v1::TrainingJob job = Train(request);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();

  const std::string after = ScrapeMetrics(port);
  EXPECT_THAT(SampleValue(after, JobSeries("microgpt_trainer_step", job)),
              Optional(30.0));
  EXPECT_THAT(
      SampleValue(after, JobSeries("microgpt_trainer_total_steps", job)),
      Optional(30.0));
  EXPECT_THAT(SampleValue(after, JobSeries("microgpt_trainer_loss", job)),
              Optional(::testing::DoubleNear(job.progress().loss(), 1e-4)));
  EXPECT_GT(
      SampleValue(after, JobSeries("microgpt_trainer_tokens_per_second", job))
          .value_or(0),
      0);
  // The lr decays linearly to 0 over the steps: small but set at the end.
  EXPECT_GT(SampleValue(after, JobSeries("microgpt_trainer_learning_rate", job))
                .value_or(0),
            0);
  EXPECT_THAT(SampleValue(after,
                          "microgpt_trainer_checkpoints_published_total{"
                          "model=\"tiny\"}"),
              Optional(3.0));
  // Every step's target tokens, counted once (the job reports them too).
  EXPECT_GT(job.progress().tokens(), 30);
  EXPECT_THAT(
      SampleValue(after, "microgpt_trainer_tokens_total{model=\"tiny\"}"),
      Optional(static_cast<double>(job.progress().tokens())));
  EXPECT_THAT(SampleValue(after, JobSeries("microgpt_trainer_job_state", job,
                                           ",state=\"succeeded\"")),
              Optional(1.0));
  EXPECT_THAT(SampleValue(after, JobSeries("microgpt_trainer_job_state", job,
                                           ",state=\"running\"")),
              Optional(0.0));
  EXPECT_THAT(SampleValue(after,
                          "microgpt_trainer_jobs_total{state="
                          "\"succeeded\"}"),
              Optional(1.0));
  EXPECT_THAT(SampleValue(after,
                          "microgpt_trainer_jobs_total{state="
                          "\"failed\"}"),
              Optional(0.0));

  // The next job's series replace the first one's; the counters go on.
  const v1::TrainingJob second = Train(SmallRequest("other", 5));
  ASSERT_EQ(second.state(), v1::JOB_STATE_SUCCEEDED) << second.error();
  const std::string later = ScrapeMetrics(port);
  EXPECT_THAT(SampleValue(later, JobSeries("microgpt_trainer_step", second)),
              Optional(5.0));
  EXPECT_EQ(SampleValue(later, JobSeries("microgpt_trainer_step", job)),
            std::nullopt);
  EXPECT_THAT(
      SampleValue(later, "microgpt_trainer_tokens_total{model=\"tiny\"}"),
      Optional(static_cast<double>(job.progress().tokens())));
  EXPECT_THAT(SampleValue(later,
                          "microgpt_trainer_jobs_total{state="
                          "\"succeeded\"}"),
              Optional(2.0));
}

TEST_F(TrainerMetricsTest, EveryVersionCarriesItsLossCurve) {
  v1::StartTrainingRequest request = SmallRequest("tiny", 30);
  request.set_checkpoint_every(10);
  ASSERT_EQ(Train(request).state(), v1::JOB_STATE_SUCCEEDED);
  for (int64_t version : {10, 20, 30}) {
    const LossCurve curve = CurveOf("tiny", version);
    ASSERT_EQ(curve.points().size(), static_cast<size_t>(version));
    for (size_t i = 0; i < curve.points().size(); ++i) {
      EXPECT_EQ(curve.points()[i].step, static_cast<int64_t>(i + 1));
      EXPECT_TRUE(std::isfinite(curve.points()[i].loss));
      EXPECT_GT(curve.points()[i].loss, 0);
    }
  }
  // Published versions are immutable: an earlier one's curve is a prefix.
  const LossCurve v10 = CurveOf("tiny", 10), v30 = CurveOf("tiny", 30);
  for (size_t i = 0; i < v10.points().size(); ++i) {
    EXPECT_EQ(v10.points()[i].loss, v30.points()[i].loss);
  }

  // A resumed run continues the curve of the version it resumed from.
  v1::StartTrainingRequest resume = SmallRequest("tiny", 45);
  resume.set_resume(true);
  ASSERT_EQ(Train(resume).state(), v1::JOB_STATE_SUCCEEDED);
  const LossCurve v45 = CurveOf("tiny", 45);
  ASSERT_EQ(v45.points().size(), 45u);
  for (size_t i = 0; i < v30.points().size(); ++i) {
    EXPECT_EQ(v45.points()[i].loss, v30.points()[i].loss);
    EXPECT_NEAR(v45.points()[i].smoothed, v30.points()[i].smoothed, 1e-5);
  }
  EXPECT_EQ(v45.points().back().step, 45);
}

}  // namespace
}  // namespace microgpt
