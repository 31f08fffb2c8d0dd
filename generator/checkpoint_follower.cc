#include "generator/checkpoint_follower.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/checkpoint_store.h"
#include "common/log.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"
#include "server/grpc_status.h"

namespace microgpt {
namespace {

constexpr absl::string_view kTempPrefix = ".tmp-";
constexpr absl::string_view kManifest = "manifest.json";

absl::Status ErrnoError(absl::string_view what, absl::string_view path) {
  const int error = errno;
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(error)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return ErrnoError("cannot fsync", path);
  return absl::OkStatus();
}

bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// One file being received.
struct FileInProgress {
  int fd = -1;
  int64_t written = 0;
  int64_t expected_size = 0;
  std::string expected_sha256;
  std::unique_ptr<Sha256Hasher> hasher;
};

struct ReceivedFile {
  int64_t size = 0;
  std::string sha256;
};

// Receives a version's chunks into `temp_dir`; verifies everything.
class VersionWriter {
 public:
  explicit VersionWriter(std::string temp_dir) : dir_(std::move(temp_dir)) {}
  ~VersionWriter() {
    if (current_.fd >= 0) ::close(current_.fd);
  }

  absl::Status Add(const v1::CheckpointChunk& chunk) {
    if (chunk.file() != current_name_) {
      if (absl::Status status = FinishFile(); !status.ok()) return status;
      if (!IsPlainFileName(chunk.file())) {
        return absl::DataLossError(
            absl::StrCat("bad file name \"", chunk.file(), "\""));
      }
      if (received_.count(chunk.file()) > 0) {
        return absl::DataLossError(
            absl::StrCat(chunk.file(), " was sent twice"));
      }
      const std::string path = absl::StrCat(dir_, "/", chunk.file());
      current_.fd =
          ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (current_.fd < 0) return ErrnoError("cannot create", path);
      current_name_ = chunk.file();
      current_.written = 0;
      current_.expected_size = chunk.file_size();
      current_.expected_sha256 = chunk.sha256();
      current_.hasher = std::make_unique<Sha256Hasher>();
    }
    if (chunk.offset() != current_.written) {
      return absl::DataLossError(
          absl::StrCat(chunk.file(), ": chunk at offset ", chunk.offset(),
                       " after ", current_.written, " bytes"));
    }
    if (current_.written + static_cast<int64_t>(chunk.data().size()) >
        current_.expected_size) {
      return absl::DataLossError(absl::StrCat(
          chunk.file(), " is longer than its size ", current_.expected_size));
    }
    const std::string& data = chunk.data();
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          ::write(current_.fd, data.data() + done, data.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("cannot write", chunk.file());
      }
      done += static_cast<size_t>(n);
    }
    current_.hasher->Update(data);
    current_.written += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  // Ends the last file, then checks the set of files against manifest.json
  // and fsyncs the directory.
  absl::Status Finish(int64_t version) {
    if (absl::Status status = FinishFile(); !status.ok()) return status;
    auto manifest_entry = received_.find(std::string(kManifest));
    if (manifest_entry == received_.end()) {
      return absl::DataLossError("no manifest.json was sent");
    }
    std::string text;
    {
      std::error_code error;
      const std::string path = absl::StrCat(dir_, "/", kManifest);
      const auto size = std::filesystem::file_size(path, error);
      if (error || size > (1 << 20)) {
        return absl::DataLossError("cannot read the received manifest.json");
      }
      text.resize(size);
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return ErrnoError("cannot open", path);
      const ssize_t n = ::read(fd, text.data(), text.size());
      ::close(fd);
      if (n != static_cast<ssize_t>(text.size())) {
        return absl::DataLossError("cannot read the received manifest.json");
      }
    }
    const nlohmann::json manifest =
        nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!manifest.is_object() || !manifest.contains("files") ||
        !manifest["files"].is_object() || !manifest.contains("version") ||
        !manifest["version"].is_number_integer() ||
        manifest["version"].get<int64_t>() != version) {
      return absl::DataLossError(absl::StrCat(
          "the received manifest.json is not the one of version ", version));
    }
    const nlohmann::json& files = manifest["files"];
    if (files.size() + 1 != received_.size()) {
      return absl::DataLossError(absl::StrCat("received ", received_.size() - 1,
                                              " files but the manifest lists ",
                                              files.size()));
    }
    for (auto it = files.begin(); it != files.end(); ++it) {
      auto got = received_.find(it.key());
      const nlohmann::json& entry = it.value();
      if (got == received_.end() || !entry.is_object() ||
          !entry.contains("size") || !entry["size"].is_number_integer() ||
          entry["size"].get<int64_t>() != got->second.size ||
          !entry.contains("sha256") || !entry["sha256"].is_string() ||
          entry["sha256"].get<std::string>() != got->second.sha256) {
        return absl::DataLossError(absl::StrCat(
            it.key(), " does not match its entry in the manifest"));
      }
    }
    return FsyncPath(dir_, O_RDONLY | O_DIRECTORY);
  }

 private:
  absl::Status FinishFile() {
    if (current_.fd < 0) return absl::OkStatus();
    const std::string name = current_name_;
    absl::StatusOr<std::string> digest = current_.hasher->HexDigest();
    const bool synced = ::fsync(current_.fd) == 0;
    ::close(current_.fd);
    current_.fd = -1;
    current_name_.clear();
    if (!synced) return ErrnoError("cannot fsync", name);
    if (!digest.ok()) return digest.status();
    if (current_.written != current_.expected_size) {
      return absl::DataLossError(
          absl::StrCat(name, ": received ", current_.written,
                       " bytes but its size is ", current_.expected_size));
    }
    if (*digest != current_.expected_sha256) {
      return absl::DataLossError(absl::StrCat(
          name, " is corrupt: its SHA-256 is ", *digest,
          " but the trainer's manifest says ", current_.expected_sha256));
    }
    received_[name] = ReceivedFile{current_.written, *digest};
    return absl::OkStatus();
  }

  const std::string dir_;
  std::string current_name_;
  FileInProgress current_;
  std::map<std::string, ReceivedFile> received_;
};

std::string RandomSuffix() {
  std::random_device random;
  return absl::StrCat(::getpid(), "-", random());
}

}  // namespace

absl::Status DownloadVersion(v1::Trainer::StubInterface* stub,
                             absl::string_view cache_dir,
                             absl::string_view model, int64_t version,
                             absl::Duration timeout,
                             grpc::ClientContext* context) {
  if (absl::Status status = ValidateModelName(model); !status.ok()) {
    return status;
  }
  const std::string model_dir = absl::StrCat(cache_dir, "/", model);
  const std::string final_dir = absl::StrCat(model_dir, "/", version);
  std::error_code error;
  if (std::filesystem::exists(final_dir, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat(final_dir, " is already in the cache"));
  }
  std::filesystem::create_directories(model_dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create ", model_dir, ": ", error.message()));
  }
  const std::string temp_dir =
      absl::StrCat(model_dir, "/", kTempPrefix, version, "-", RandomSuffix());
  if (::mkdir(temp_dir.c_str(), 0755) != 0) {
    return ErrnoError("cannot create", temp_dir);
  }
  const auto fail = [&temp_dir](absl::Status status) {
    std::error_code ignored;
    std::filesystem::remove_all(temp_dir, ignored);
    return status;
  };

  grpc::ClientContext own_context;
  if (context == nullptr) context = &own_context;
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::DownloadCheckpointRequest request;
  request.set_model(std::string(model));
  request.set_version(version);
  std::unique_ptr<grpc::ClientReaderInterface<v1::CheckpointChunk>> reader =
      stub->DownloadCheckpoint(context, request);
  VersionWriter writer(temp_dir);
  v1::CheckpointChunk chunk;
  absl::Status written = absl::OkStatus();
  while (reader->Read(&chunk)) {
    written = writer.Add(chunk);
    if (!written.ok()) {
      context->TryCancel();
      break;
    }
  }
  const grpc::Status rpc = reader->Finish();
  if (!written.ok()) return fail(written);
  if (!rpc.ok()) return fail(ToAbslStatus(rpc));
  if (absl::Status status = writer.Finish(version); !status.ok()) {
    return fail(status);
  }
  if (::rename(temp_dir.c_str(), final_dir.c_str()) != 0) {
    const int rename_error = errno;
    fail(absl::OkStatus());
    if (rename_error == EEXIST || rename_error == ENOTEMPTY) {
      return absl::AlreadyExistsError(
          absl::StrCat(final_dir, " is already in the cache"));
    }
    errno = rename_error;
    return ErrnoError("cannot rename into", final_dir);
  }
  return FsyncPath(model_dir, O_RDONLY | O_DIRECTORY);
}

CheckpointFollower::CheckpointFollower(CheckpointFollowerOptions options)
    : options_(std::move(options)) {}

CheckpointFollower::~CheckpointFollower() { Stop(); }

absl::Status CheckpointFollower::Start() {
  std::error_code error;
  std::filesystem::create_directories(options_.cache_dir, error);
  if (error || !std::filesystem::is_directory(options_.cache_dir, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create the cache directory '", options_.cache_dir,
                     "': ", error.message()));
  }
  // Temporaries of a previous run that died mid-download.
  for (const auto& model :
       std::filesystem::directory_iterator(options_.cache_dir, error)) {
    if (!model.is_directory(error)) continue;
    std::error_code inner;
    for (const auto& entry :
         std::filesystem::directory_iterator(model.path(), inner)) {
      if (absl::StartsWith(entry.path().filename().string(), kTempPrefix)) {
        std::error_code ignored;
        std::filesystem::remove_all(entry.path(), ignored);
      }
    }
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void CheckpointFollower::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (stop_.HasBeenNotified()) return;
  stop_.Notify();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (grpc::ClientContext* context : active_contexts_) context->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

int64_t CheckpointFollower::downloads() const {
  absl::MutexLock lock(&mu_);
  return downloads_;
}

int64_t CheckpointFollower::failed_downloads() const {
  absl::MutexLock lock(&mu_);
  return failed_downloads_;
}

bool CheckpointFollower::Track(grpc::ClientContext* context) {
  // Every call of the follower passes through here, so the token goes here.
  if (!options_.auth_token.empty()) {
    context->AddMetadata("authorization", "Bearer " + options_.auth_token);
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    context->TryCancel();
    return false;
  }
  active_contexts_.insert(context);
  return true;
}

void CheckpointFollower::Untrack(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  active_contexts_.erase(context);
}

void CheckpointFollower::Run() {
  grpc::ChannelArguments args;
  // Reconnect quickly after a trainer restart rather than after gRPC's
  // default backoff of up to two minutes.
  args.SetInt(
      GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options_.max_backoff)));
  args.SetInt(
      GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options_.initial_backoff)));
  args.SetInt(
      GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options_.initial_backoff)));
  args.SetMaxReceiveMessageSize(8 << 20);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      options_.credentials != nullptr ? options_.credentials
                                      : grpc::InsecureChannelCredentials();
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options_.trainer_address, credentials, args);
  std::unique_ptr<v1::Trainer::Stub> stub = v1::Trainer::NewStub(channel);
  absl::Duration backoff = options_.initial_backoff;
  while (!stop_.HasBeenNotified()) {
    const absl::Time started = absl::Now();
    const bool got_events = FollowOnce(stub.get());
    if (stop_.HasBeenNotified()) break;
    if (got_events || absl::Now() - started > options_.max_backoff) {
      backoff = options_.initial_backoff;
    }
    stop_.WaitForNotificationWithTimeout(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool CheckpointFollower::FollowOnce(v1::Trainer::Stub* stub) {
  grpc::ClientContext context;
  if (!Track(&context)) return false;
  v1::WatchCheckpointsRequest request;
  request.set_model(options_.model);
  std::unique_ptr<grpc::ClientReader<v1::CheckpointEvent>> reader =
      stub->WatchCheckpoints(&context, request);
  bool got_events = false;
  v1::CheckpointEvent event;
  while (reader->Read(&event)) {
    if (!got_events) {
      LogInfo(
          absl::StrCat("following the trainer at ", options_.trainer_address));
    }
    got_events = true;
    const v1::CheckpointInfo& info = event.checkpoint();
    if (ValidateModelName(info.model()).ok() && info.version() > 0) {
      grpc::ClientContext download_context;
      if (!Track(&download_context)) break;
      const absl::Status status = DownloadVersion(
          stub, options_.cache_dir, info.model(), info.version(),
          options_.download_timeout, &download_context);
      Untrack(&download_context);
      if (status.ok()) {
        LogInfo(absl::StrCat("downloaded ", info.model(), "/", info.version(),
                             " from the trainer into ", options_.cache_dir));
        {
          absl::MutexLock lock(&mu_);
          ++downloads_;
        }
        if (options_.on_new_version) options_.on_new_version();
      } else if (!absl::IsAlreadyExists(status)) {
        {
          absl::MutexLock lock(&mu_);
          ++failed_downloads_;
        }
        if (stop_.HasBeenNotified()) break;
        LogWarning(absl::StrCat("cannot download ", info.model(), "/",
                                info.version(),
                                " from the trainer: ", status.ToString()));
      }
    }
  }
  const grpc::Status status = reader->Finish();
  Untrack(&context);
  if (!stop_.HasBeenNotified()) {
    LogWarning(absl::StrCat("WatchCheckpoints to ", options_.trainer_address,
                            " ended: ", ToAbslStatus(status).ToString(),
                            "; reconnecting"));
  }
  return got_events;
}

}  // namespace microgpt
