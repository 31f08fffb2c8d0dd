#include "trainer/checkpoint_feed.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint_dir.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "server/grpc_status.h"
#include "server/read_ahead.h"
#include "server/stream_reactor.h"
#include "trainer/checkpoint_listing.h"

namespace microgpt {

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

absl::Status ShuttingDown() {
  return absl::UnavailableError("the trainer is shutting down");
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
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stop_.Notify();
    for (const Subscriber& subscriber : subscribers_) {
      subscriber.events->Close(ShuttingDown());
    }
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
      absl::StatusOr<ModelRecord> metadata =
          ReadVersionMetadata(*store_, model, version);
      if (!metadata.ok()) {
        LogWarning(absl::StrCat("checkpoint feed: skipping ", model, "/",
                                version, ": ", metadata.status().ToString()));
        unreadable_.insert(key);
        continue;
      }
      found.push_back(CheckpointInfoOf(*store_, model, version, *metadata));
    }
  }
  if (found.empty()) return;
  absl::MutexLock lock(&mu_);
  for (v1::CheckpointInfo& info : found) {
    known_set_.insert({info.model(), info.version()});
    for (const Subscriber& subscriber : subscribers_) {
      if (Matches(subscriber.model, info.model())) {
        subscriber.events->Push(EventOf(info));
      }
    }
    known_.push_back(std::move(info));
  }
}

std::shared_ptr<CheckpointEvents> CheckpointFeed::Subscribe(std::string model) {
  auto events = std::make_shared<CheckpointEvents>();
  absl::MutexLock lock(&mu_);
  if (stopped_) {
    events->Close(ShuttingDown());
    return events;
  }
  // Oldest first: by model, then version.
  std::vector<const v1::CheckpointInfo*> matching;
  for (const v1::CheckpointInfo& info : known_) {
    if (Matches(model, info.model())) matching.push_back(&info);
  }
  std::sort(matching.begin(), matching.end(), [](const auto* a, const auto* b) {
    return std::make_pair(a->model(), a->version()) <
           std::make_pair(b->model(), b->version());
  });
  for (const v1::CheckpointInfo* info : matching) {
    events->Push(EventOf(*info));
  }
  subscribers_.push_back({std::move(model), events});
  return events;
}

void CheckpointFeed::Unsubscribe(const CheckpointEvents* events) {
  absl::MutexLock lock(&mu_);
  subscribers_.erase(std::remove_if(subscribers_.begin(), subscribers_.end(),
                                    [events](const Subscriber& s) {
                                      return s.events.get() == events;
                                    }),
                     subscribers_.end());
}

namespace {

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

// Cuts a version's files into chunks, in order. Its reads block: it runs on
// the trainer's reader thread (StartReadAhead), never on gRPC's.
class ChunkReader {
 public:
  ChunkReader(std::vector<FileToSend> files, size_t chunk_bytes)
      : files_(std::move(files)),
        chunk_bytes_(std::clamp<size_t>(chunk_bytes, 1, 1 << 20)) {}

  // The next chunk, nullopt after the last one.
  absl::StatusOr<std::optional<v1::CheckpointChunk>> Next() {
    v1::CheckpointChunk chunk;
    absl::StatusOr<bool> more = NextChunk(chunk);
    if (!more.ok()) {
      LogWarning(
          absl::StrCat("DownloadCheckpoint: ", more.status().ToString()));
      return more.status();
    }
    if (!*more) return std::nullopt;
    return chunk;
  }

 private:
  absl::StatusOr<bool> NextChunk(v1::CheckpointChunk& chunk) {
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
      chunk.Clear();
      chunk.set_file(file.name);
      chunk.set_offset(offset_);
      chunk.set_file_size(file.size);
      chunk.set_sha256(file.sha256);
      offset_ += static_cast<int64_t>(data.size());
      const bool last = data.size() < chunk_bytes_;
      *chunk.mutable_data() = std::move(data);
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
};

}  // namespace

grpc::ServerWriteReactor<v1::CheckpointEvent>* NewWatchCheckpointsReactor(
    CheckpointFeed* feed, const v1::WatchCheckpointsRequest& request) {
  if (!request.model().empty()) {
    if (absl::Status status = ValidateModelName(request.model());
        !status.ok()) {
      return new FailedStreamReactor<v1::CheckpointEvent>(status);
    }
  }
  std::shared_ptr<CheckpointEvents> events = feed->Subscribe(request.model());
  return new QueueStreamReactor<v1::CheckpointEvent>(
      events, "the watch",
      [feed, events = events.get()] { feed->Unsubscribe(events); });
}

grpc::ServerWriteReactor<v1::CheckpointChunk>* NewDownloadCheckpointReactor(
    const CheckpointStore* store, WorkThread* reader, size_t chunk_bytes,
    const v1::DownloadCheckpointRequest& request) {
  absl::StatusOr<std::vector<FileToSend>> files =
      FilesOfVersion(*store, request);
  if (!files.ok())
    return new FailedStreamReactor<v1::CheckpointChunk>(files.status());
  auto chunks = std::make_shared<ChunkReader>(*std::move(files), chunk_bytes);
  // One chunk queued while gRPC writes the one before: a client that stops
  // reading stops the reads.
  return new QueueStreamReactor<v1::CheckpointChunk>(
      StartReadAhead<v1::CheckpointChunk>(reader, /*depth=*/1,
                                          [chunks] { return chunks->Next(); }),
      "the download");
}

}  // namespace microgpt
