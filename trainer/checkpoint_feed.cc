#include "trainer/checkpoint_feed.h"

#include <algorithm>
#include <fstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint_dir.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "server/grpc_status.h"
#include "trainer/checkpoint_listing.h"

namespace microgpt {

// ------------------------------------------------------------ subscription

std::optional<v1::CheckpointEvent> CheckpointSubscription::Pop() {
  absl::MutexLock lock(&mu_);
  if (queue_.empty()) return std::nullopt;
  v1::CheckpointEvent event = std::move(queue_.front());
  queue_.pop_front();
  return event;
}

bool CheckpointSubscription::Closed() const {
  absl::MutexLock lock(&mu_);
  return closed_ && queue_.empty();
}

void CheckpointSubscription::Push(v1::CheckpointEvent event, bool notify) {
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(event));
  }
  if (notify && on_event_) on_event_();
}

void CheckpointSubscription::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  if (on_event_) on_event_();
}

// -------------------------------------------------------------------- feed

namespace {

bool Matches(const std::string& filter, const std::string& model) {
  return filter.empty() || filter == model;
}

v1::CheckpointEvent EventOf(const v1::CheckpointInfo& info) {
  v1::CheckpointEvent event;
  *event.mutable_checkpoint() = info;
  return event;
}

}  // namespace

CheckpointFeed::CheckpointFeed(const CheckpointStore* store,
                               CheckpointFeedOptions options)
    : store_(store), options_(std::move(options)) {}

CheckpointFeed::~CheckpointFeed() { Stop(); }

void CheckpointFeed::Start() {
  PollOnce();
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.poll_interval)) {
      PollOnce();
    }
  });
}

void CheckpointFeed::Stop() {
  std::vector<std::shared_ptr<CheckpointSubscription>> subscriptions;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stop_.Notify();
    subscriptions = subscriptions_;
    for (const auto& subscription : subscriptions) subscription->Close();
  }
  if (thread_.joinable()) thread_.join();
}

void CheckpointFeed::PollOnce() {
  absl::MutexLock poll_lock(&poll_mu_);
  absl::StatusOr<std::vector<std::string>> models = store_->ListModels();
  if (!models.ok()) {
    if (!absl::IsNotFound(models.status())) {
      LogWarning(absl::StrCat("checkpoint feed: cannot list ", store_->root(),
                              ": ", models.status().ToString()));
    }
    return;
  }
  std::vector<v1::CheckpointInfo> found;
  for (const std::string& model : *models) {
    absl::StatusOr<std::vector<int64_t>> versions = store_->ListVersions(model);
    if (!versions.ok()) continue;
    for (int64_t version : *versions) {
      const auto key = std::make_pair(model, version);
      if (unreadable_.count(key) > 0) continue;
      {
        absl::MutexLock lock(&mu_);
        if (known_set_.count(key) > 0) continue;
      }
      absl::StatusOr<ModelStepAndLoss> metadata =
          ReadVersionMetadata(*store_, model, version);
      if (!metadata.ok()) {
        LogWarning(absl::StrCat("checkpoint feed: skipping ", model, "/",
                                version, ": ", metadata.status().ToString()));
        unreadable_.insert(key);
        continue;
      }
      v1::CheckpointInfo info;
      info.set_model(model);
      info.set_version(version);
      info.set_step(metadata->step);
      info.set_loss(metadata->loss);
      info.set_path(store_->VersionPath(model, version));
      found.push_back(std::move(info));
    }
  }
  if (found.empty()) return;
  absl::MutexLock lock(&mu_);
  for (v1::CheckpointInfo& info : found) {
    known_set_.insert({info.model(), info.version()});
    for (const auto& subscription : subscriptions_) {
      if (Matches(subscription->model(), info.model())) {
        subscription->Push(EventOf(info));
      }
    }
    known_.push_back(std::move(info));
  }
}

std::shared_ptr<CheckpointSubscription> CheckpointFeed::Subscribe(
    std::string model, std::function<void()> on_event) {
  auto subscription = std::make_shared<CheckpointSubscription>(
      std::move(model), std::move(on_event));
  absl::MutexLock lock(&mu_);
  if (stopped_) {
    subscription->Close();
    return subscription;
  }
  // Oldest first: by model, then version.
  std::vector<const v1::CheckpointInfo*> matching;
  for (const v1::CheckpointInfo& info : known_) {
    if (Matches(subscription->model(), info.model())) {
      matching.push_back(&info);
    }
  }
  std::sort(matching.begin(), matching.end(), [](const auto* a, const auto* b) {
    return std::make_pair(a->model(), a->version()) <
           std::make_pair(b->model(), b->version());
  });
  for (const v1::CheckpointInfo* info : matching) {
    subscription->Push(EventOf(*info), /*notify=*/false);  // the caller writes
  }
  subscriptions_.push_back(subscription);
  return subscription;
}

void CheckpointFeed::Unsubscribe(const CheckpointSubscription* subscription) {
  absl::MutexLock lock(&mu_);
  subscriptions_.erase(
      std::remove_if(
          subscriptions_.begin(), subscriptions_.end(),
          [subscription](const auto& s) { return s.get() == subscription; }),
      subscriptions_.end());
}

// ------------------------------------------------------- WatchCheckpoints

namespace {

class WatchCheckpointsReactor final
    : public grpc::ServerWriteReactor<v1::CheckpointEvent> {
 public:
  WatchCheckpointsReactor(CheckpointFeed* feed, std::string model)
      : feed_(feed) {
    std::shared_ptr<CheckpointSubscription> subscription =
        feed_->Subscribe(std::move(model), [this] { WriteNext(); });
    {
      absl::MutexLock lock(&mu_);
      subscription_ = std::move(subscription);
    }
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      cancelled = cancelled_;
    }
    if (!ok || cancelled) {
      FinishOnce(
          grpc::Status(grpc::StatusCode::CANCELLED, "the watch was cancelled"));
    } else {
      WriteNext();
    }
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      if (writing_) return;  // OnWriteDone finishes
    }
    FinishOnce(
        grpc::Status(grpc::StatusCode::CANCELLED, "the watch was cancelled"));
  }

  void OnDone() override {
    feed_->Unsubscribe(subscription_.get());
    delete this;
  }

 private:
  void WriteNext() {
    bool write = false;
    {
      absl::MutexLock lock(&mu_);
      if (subscription_ == nullptr || writing_ || finished_ || cancelled_) {
        return;
      }
      std::optional<v1::CheckpointEvent> event = subscription_->Pop();
      if (event) {
        current_ = *std::move(event);
        writing_ = true;
        write = true;
      } else if (!subscription_->Closed()) {
        return;
      }
    }
    if (write) {
      StartWrite(&current_);
    } else {
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "the trainer is shutting down"));
    }
  }

  void FinishOnce(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(status);
  }

  CheckpointFeed* const feed_;
  absl::Mutex mu_;
  std::shared_ptr<CheckpointSubscription> subscription_;
  v1::CheckpointEvent current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

template <typename Message>
class FailedReactor final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit FailedReactor(const absl::Status& status) {
    this->Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

// ------------------------------------------------------ DownloadCheckpoint

struct FileToSend {
  std::string name;
  std::string path;     // empty: `content` holds the bytes
  std::string content;  // manifest.json
  int64_t size = 0;     // from the manifest
  std::string sha256;   // from the manifest
};

absl::StatusOr<std::vector<FileToSend>> FilesOfVersion(
    const CheckpointStore& store,
    const v1::DownloadCheckpointRequest& request) {
  if (absl::Status status = ValidateModelName(request.model()); !status.ok()) {
    return status;
  }
  if (absl::Status status = ValidateVersion(request.version()); !status.ok()) {
    return status;
  }
  const std::string dir = store.VersionPath(request.model(), request.version());
  if (!IsDirectory(dir)) {
    return absl::NotFoundError(absl::StrCat("no version ", request.version(),
                                            " of model \"", request.model(),
                                            "\" on this trainer"));
  }
  // Sent first and byte for byte: the receiver checks the rest against it.
  FileToSend manifest_file;
  manifest_file.name = std::string(kManifestFile);
  absl::StatusOr<Manifest> manifest =
      ReadManifest(dir, request.version(), &manifest_file.content);
  if (absl::IsNotFound(manifest.status())) {
    return absl::NotFoundError(absl::StrCat(dir, " has no ", kManifestFile,
                                            " (not a published version)"));
  }
  if (!manifest.ok()) return manifest.status();
  manifest_file.size = static_cast<int64_t>(manifest_file.content.size());
  absl::StatusOr<std::string> digest = Sha256Hex(manifest_file.content);
  if (!digest.ok()) return digest.status();
  manifest_file.sha256 = *digest;

  std::vector<FileToSend> result;
  result.push_back(std::move(manifest_file));
  for (const auto& [name, entry] : manifest->files) {
    FileToSend file;
    file.name = name;
    file.path = JoinPath(dir, name);
    file.size = entry.size;
    file.sha256 = entry.sha256;
    result.push_back(std::move(file));
  }
  return result;
}

class DownloadReactor final
    : public grpc::ServerWriteReactor<v1::CheckpointChunk> {
 public:
  DownloadReactor(std::vector<FileToSend> files, size_t chunk_bytes)
      : files_(std::move(files)),
        chunk_bytes_(std::clamp<size_t>(chunk_bytes, 1, 1 << 20)) {
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                          "the download was cancelled"));
      return;
    }
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  // Reads the next chunk into chunk_ and writes it, or finishes.
  void WriteNext() {
    absl::StatusOr<bool> more = NextChunk();
    if (!more.ok()) {
      LogWarning(
          absl::StrCat("DownloadCheckpoint: ", more.status().ToString()));
      Finish(ToGrpcStatus(more.status()));
    } else if (!*more) {
      Finish(grpc::Status::OK);
    } else {
      StartWrite(&chunk_);
    }
  }

  absl::StatusOr<bool> NextChunk() {
    while (index_ < files_.size()) {
      const FileToSend& file = files_[index_];
      std::string data;
      if (file.path.empty()) {
        data = file.content.substr(
            std::min<size_t>(offset_, file.content.size()), chunk_bytes_);
      } else {
        if (!in_.is_open()) {
          in_.open(file.path, std::ios::binary);
          if (!in_) {
            return absl::NotFoundError(absl::StrCat("cannot open ", file.path));
          }
        }
        data.resize(chunk_bytes_);
        in_.read(data.data(), static_cast<std::streamsize>(chunk_bytes_));
        data.resize(static_cast<size_t>(in_.gcount()));
        if (in_.bad()) {
          return absl::DataLossError(absl::StrCat("cannot read ", file.path));
        }
      }
      if (data.empty() && offset_ > 0) {  // the end of this file
        NextFile();
        continue;
      }
      chunk_.Clear();
      chunk_.set_file(file.name);
      chunk_.set_offset(offset_);
      chunk_.set_file_size(file.size);
      chunk_.set_sha256(file.sha256);
      offset_ += static_cast<int64_t>(data.size());
      const bool last = data.size() < chunk_bytes_;
      *chunk_.mutable_data() = std::move(data);
      if (last) NextFile();
      return true;
    }
    return false;
  }

  void NextFile() {
    if (in_.is_open()) in_.close();
    in_.clear();
    ++index_;
    offset_ = 0;
  }

  const std::vector<FileToSend> files_;
  const size_t chunk_bytes_;
  size_t index_ = 0;
  int64_t offset_ = 0;
  std::ifstream in_;
  v1::CheckpointChunk chunk_;
};

}  // namespace

grpc::ServerWriteReactor<v1::CheckpointEvent>* NewWatchCheckpointsReactor(
    CheckpointFeed* feed, const v1::WatchCheckpointsRequest& request) {
  if (!request.model().empty()) {
    if (absl::Status status = ValidateModelName(request.model());
        !status.ok()) {
      return new FailedReactor<v1::CheckpointEvent>(status);
    }
  }
  return new WatchCheckpointsReactor(feed, request.model());
}

grpc::ServerWriteReactor<v1::CheckpointChunk>* NewDownloadCheckpointReactor(
    const CheckpointStore* store, size_t chunk_bytes,
    const v1::DownloadCheckpointRequest& request) {
  absl::StatusOr<std::vector<FileToSend>> files =
      FilesOfVersion(*store, request);
  if (!files.ok())
    return new FailedReactor<v1::CheckpointChunk>(files.status());
  return new DownloadReactor(*std::move(files), chunk_bytes);
}

}  // namespace microgpt
