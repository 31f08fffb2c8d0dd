// The queue-draining stream reactors (server/stream_reactor.h) and the
// read-ahead source (server/read_ahead.h) against a real in-process server on
// 127.0.0.1: a stub Trainer whose WatchCheckpoints drains a queue the test
// fills and whose DownloadCheckpoint reads ahead of a counting source. Also
// StreamQueue and StartReadAhead on their own.
#include "server/stream_reactor.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "server/read_ahead.h"
#include "server/stream_queue.h"
#include "server/work_thread.h"

namespace microgpt {
namespace {

using Events = StreamQueue<v1::CheckpointEvent>;

constexpr size_t kChunkBytes = 256 << 10;
constexpr int kChunks = 400;  // 100 MiB: far more than gRPC buffers

v1::CheckpointEvent Event(int64_t version) {
  v1::CheckpointEvent event;
  event.mutable_checkpoint()->set_version(version);
  return event;
}

// WatchCheckpoints drains `events` (model "refuse": a failed call);
// DownloadCheckpoint sends kChunks chunks read ahead on `reader`, counting
// the reads.
class StreamService final : public v1::Trainer::CallbackService {
 public:
  grpc::ServerWriteReactor<v1::CheckpointEvent>* WatchCheckpoints(
      grpc::CallbackServerContext*,
      const v1::WatchCheckpointsRequest* request) override {
    if (request->model() == "refuse") {
      return new FailedStreamReactor<v1::CheckpointEvent>(
          absl::NotFoundError("no model \"refuse\""));
    }
    return new QueueStreamReactor<v1::CheckpointEvent>(
        events, "the watch", [this] { done.Notify(); });
  }

  grpc::ServerWriteReactor<v1::CheckpointChunk>* DownloadCheckpoint(
      grpc::CallbackServerContext*,
      const v1::DownloadCheckpointRequest*) override {
    auto queue = StartReadAhead<v1::CheckpointChunk>(
        &reader, /*depth=*/1,
        [this]() -> absl::StatusOr<std::optional<v1::CheckpointChunk>> {
          const int n = reads++;
          if (n == kChunks) return std::nullopt;
          v1::CheckpointChunk chunk;
          chunk.set_offset(static_cast<int64_t>(n) * kChunkBytes);
          chunk.mutable_data()->assign(kChunkBytes, 'x');
          return chunk;
        });
    return new QueueStreamReactor<v1::CheckpointChunk>(
        queue, "the download", [this] { done.Notify(); });
  }

  std::shared_ptr<Events> events = std::make_shared<Events>();
  absl::Notification done;  // the reactor's on_done ran
  std::atomic<int> reads{0};
  WorkThread reader;
};

class StreamReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Trainer::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                            grpc::InsecureChannelCredentials()));
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(30));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  std::unique_ptr<grpc::ClientReader<v1::CheckpointEvent>> Watch(
      const std::string& model = "") {
    v1::WatchCheckpointsRequest request;
    request.set_model(model);
    return stub_->WatchCheckpoints(&context_, request);
  }

  StreamService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Trainer::Stub> stub_;
  grpc::ClientContext context_;
};

TEST_F(StreamReactorTest, WritesInOrderThenTheSourcesStatus) {
  service_.events->Push(Event(1));  // queued before the call: goes first
  auto reader = Watch();
  v1::CheckpointEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.checkpoint().version(), 1);
  std::thread producer([&] {
    for (int v = 2; v <= 50; ++v) service_.events->Push(Event(v));
    service_.events->Close(absl::DataLossError("the source broke"));
  });
  for (int v = 2; v <= 50; ++v) {
    ASSERT_TRUE(reader->Read(&event));
    EXPECT_EQ(event.checkpoint().version(), v);
  }
  producer.join();
  EXPECT_FALSE(reader->Read(&event));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(status.error_message(), "the source broke");
  EXPECT_TRUE(service_.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST_F(StreamReactorTest, AClosedEmptyQueueEndsOk) {
  service_.events->Close(absl::OkStatus());
  auto reader = Watch();
  v1::CheckpointEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(StreamReactorTest, ClientCancellingMidStreamCancelsTheQueue) {
  auto reader = Watch();
  service_.events->Push(Event(1));
  v1::CheckpointEvent event;
  ASSERT_TRUE(reader->Read(&event));
  context_.TryCancel();
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(service_.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // The reactor let go: the producer's pushes are refused, not written.
  EXPECT_FALSE(service_.events->Push(Event(2)));
}

TEST_F(StreamReactorTest, ServerShutdownMidStreamEndsTheCall) {
  auto reader = Watch();
  service_.events->Push(Event(1));
  v1::CheckpointEvent event;
  ASSERT_TRUE(reader->Read(&event));
  // The queue never ends: only the shutdown's cancellation finishes it.
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(100));
  EXPECT_TRUE(service_.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  while (reader->Read(&event)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
  EXPECT_FALSE(service_.events->Push(Event(2)));
}

TEST_F(StreamReactorTest, FailedCallEndsWithItsStatusAndNoMessage) {
  auto reader = Watch("refuse");
  v1::CheckpointEvent event;
  EXPECT_FALSE(reader->Read(&event));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "no model \"refuse\"");
}

TEST_F(StreamReactorTest, ReadAheadSendsEverythingInOrder) {
  auto reader = stub_->DownloadCheckpoint(&context_, {});
  v1::CheckpointChunk chunk;
  int n = 0;
  while (reader->Read(&chunk)) {
    ASSERT_EQ(chunk.offset(), static_cast<int64_t>(n) * kChunkBytes);
    ++n;
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(n, kChunks);
}

TEST_F(StreamReactorTest, ReadAheadStopsReadingForAClientThatDoesNotRead) {
  auto reader = stub_->DownloadCheckpoint(&context_, {});
  v1::CheckpointChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  // gRPC's flow-control windows fill up, then the reads stop.
  int reads = -1;
  for (int i = 0; i < 50 && service_.reads.load() != reads; ++i) {
    reads = service_.reads.load();
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(service_.reads.load(), reads) << "still reading";
  EXPECT_LT(reads, kChunks / 4) << "read " << reads << " of " << kChunks;
  context_.TryCancel();
  while (reader->Read(&chunk)) {
  }
  reader->Finish();
  EXPECT_TRUE(service_.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

// ---------------------------------------------------------- on their own

TEST(StreamQueueTest, DropPolicyEndAndCancel) {
  StreamQueue<int>::Options options;
  options.capacity = 2;
  options.drop = [](StreamQueue<int>::Queued& queued) {
    return queued.begin();  // the oldest
  };
  StreamQueue<int> queue(options);
  int notified = 0;
  queue.SetListener([&] { ++notified; });
  for (int i = 1; i <= 4; ++i) EXPECT_TRUE(queue.Push(i));
  queue.Close(absl::CancelledError("stop"));
  EXPECT_FALSE(queue.Push(5)) << "closed";
  EXPECT_EQ(notified, 5);  // four pushes and the close
  EXPECT_FALSE(queue.End().has_value()) << "messages left";
  EXPECT_EQ(queue.Pop(), 3);
  EXPECT_EQ(queue.Pop(), 4);
  EXPECT_EQ(queue.Pop(), std::nullopt);
  ASSERT_TRUE(queue.End().has_value());
  EXPECT_TRUE(absl::IsCancelled(*queue.End()));

  StreamQueue<int> other;
  other.Push(1);
  other.Cancel();
  EXPECT_EQ(other.Pop(), std::nullopt);
  EXPECT_FALSE(other.Push(2));
  EXPECT_FALSE(other.HasRoom());
}

TEST(ReadAheadTest, ReadsOnlyDepthAheadOfThePops) {
  WorkThread thread;
  std::atomic<int> reads{0};
  auto queue = StartReadAhead<int>(
      &thread, /*depth=*/2, [&]() -> absl::StatusOr<std::optional<int>> {
        const int n = ++reads;
        if (n > 5) return absl::DataLossError("cannot read");
        return n;
      });
  auto wait_for_reads = [&](int n) {
    for (int i = 0; i < 1000 && reads.load() < n; ++i) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  };
  wait_for_reads(2);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(reads.load(), 2) << "read past the depth";
  EXPECT_EQ(queue->Pop(), 1);  // room: one more read
  wait_for_reads(3);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(reads.load(), 3);
  std::vector<int> got;
  while (!queue->End().has_value()) {
    if (std::optional<int> n = queue->PopWithTimeout(absl::Milliseconds(50))) {
      got.push_back(*n);
    }
  }
  EXPECT_THAT(got, ::testing::ElementsAre(2, 3, 4, 5));
  EXPECT_EQ(queue->End()->code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace microgpt
