#include "generator/checkpoint_follower.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/checkpoint_dir.h"
#include "common/checkpoint_store.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "server/grpc_status.h"

namespace microgpt {
namespace {

// Receives a version's chunks into a directory, checking each file's size
// and SHA-256 against its chunks' (the trainer's manifest) as it arrives, so
// that a bad download is cancelled early.
class VersionWriter {
 public:
  explicit VersionWriter(std::string dir) : dir_(std::move(dir)) {}

  absl::Status Add(const v1::CheckpointChunk& chunk) {
    if (!current_.has_value() || chunk.file() != current_name_) {
      MICROGPT_RETURN_IF_ERROR(FinishFile());
      if (!IsPlainFileName(chunk.file())) {
        return absl::DataLossError(absl::StrCat(
            "bad file name \"", absl::CHexEscape(chunk.file()), "\""));
      }
      if (!received_.insert(chunk.file()).second) {
        return absl::DataLossError(
            absl::StrCat(chunk.file(), " was sent twice"));
      }
      MICROGPT_ASSIGN_OR_RETURN(
          SyncedFileWriter file,
          SyncedFileWriter::Create(JoinPath(dir_, chunk.file())));
      current_.emplace(std::move(file));
      current_name_ = chunk.file();
      written_ = 0;
      expected_size_ = chunk.file_size();
      expected_sha256_ = chunk.sha256();
      hasher_ = std::make_unique<Sha256Hasher>();
    }
    if (chunk.offset() != written_) {
      return absl::DataLossError(
          absl::StrCat(chunk.file(), ": chunk at offset ", chunk.offset(),
                       " after ", written_, " bytes"));
    }
    if (written_ + static_cast<int64_t>(chunk.data().size()) > expected_size_) {
      return absl::DataLossError(absl::StrCat(
          chunk.file(), " is longer than its size ", expected_size_));
    }
    MICROGPT_RETURN_IF_ERROR(current_->Append(chunk.data()));
    hasher_->Update(chunk.data());
    written_ += static_cast<int64_t>(chunk.data().size());
    return absl::OkStatus();
  }

  // Ends the current file: fsynced, then checked against its chunks'.
  absl::Status FinishFile() {
    if (!current_.has_value()) return absl::OkStatus();
    const absl::Status closed = current_->Close();
    current_.reset();
    MICROGPT_RETURN_IF_ERROR(closed);
    if (written_ != expected_size_) {
      return absl::DataLossError(
          absl::StrCat(current_name_, ": received ", written_,
                       " bytes but its size is ", expected_size_));
    }
    MICROGPT_ASSIGN_OR_RETURN(const std::string digest, hasher_->HexDigest());
    if (digest != expected_sha256_) {
      return absl::DataLossError(
          absl::StrCat(current_name_, " is corrupt: its SHA-256 is ", digest,
                       " but the trainer's manifest says ", expected_sha256_));
    }
    return absl::OkStatus();
  }

 private:
  const std::string dir_;
  std::set<std::string> received_;
  std::optional<SyncedFileWriter> current_;
  std::string current_name_;
  int64_t written_ = 0;
  int64_t expected_size_ = 0;
  std::string expected_sha256_;
  std::unique_ptr<Sha256Hasher> hasher_;
};

}  // namespace

absl::Status DownloadVersion(v1::Trainer::StubInterface* stub,
                             absl::string_view cache_dir,
                             absl::string_view model, int64_t version,
                             absl::Duration timeout,
                             grpc::ClientContext* context) {
  MICROGPT_RETURN_IF_ERROR(ValidateModelName(model));
  // The trainer's own publish path: into a locked temporary directory,
  // verified as the loader will, then renamed into place.
  return PublishVersionDirectory(
      JoinPath(cache_dir, model), version,
      [&](const std::string& temp_dir) -> absl::Status {
        grpc::ClientContext own_context;
        grpc::ClientContext* call = context != nullptr ? context : &own_context;
        call->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
        v1::DownloadCheckpointRequest request;
        request.set_model(std::string(model));
        request.set_version(version);
        std::unique_ptr<grpc::ClientReaderInterface<v1::CheckpointChunk>>
            reader = stub->DownloadCheckpoint(call, request);
        VersionWriter writer(temp_dir);
        v1::CheckpointChunk chunk;
        absl::Status written = absl::OkStatus();
        while (reader->Read(&chunk)) {
          written = writer.Add(chunk);
          if (!written.ok()) {
            call->TryCancel();
            break;
          }
        }
        const grpc::Status rpc = reader->Finish();
        MICROGPT_RETURN_IF_ERROR(written);
        MICROGPT_RETURN_IF_ERROR(ToAbslStatus(rpc));
        MICROGPT_RETURN_IF_ERROR(writer.FinishFile());
        return VerifyVersionDirectory(temp_dir, version);
      });
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
  // Temporaries of a download that died mid-way; those another process
  // still writes are locked and stay.
  if (absl::Status cleaned =
          CheckpointStore(options_.cache_dir).RemoveTemporaryDirectories();
      !cleaned.ok()) {
    LogWarning(absl::StrCat("cannot clean up the cache: ", cleaned.ToString()));
  }
  if (absl::StatusOr<std::vector<std::string>> models =
          CheckpointStore(options_.cache_dir).ListModels();
      models.ok()) {
    for (const std::string& model : *models) Prune(model);
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

void CheckpointFollower::Prune(absl::string_view model) {
  if (options_.keep_versions <= 0) return;
  // The cache is this generator's own: no other reader holds leases in it.
  const CheckpointStore cache(options_.cache_dir,
                              RetentionPolicy{options_.keep_versions});
  absl::StatusOr<std::vector<int64_t>> deleted = cache.ApplyRetention(model);
  if (!deleted.ok()) {
    LogWarning(absl::StrCat("cannot prune the cache of ", model, ": ",
                            deleted.status().ToString()));
  } else if (!deleted->empty()) {
    LogInfo(absl::StrCat(
        "removed ", model, " version(s) ", absl::StrJoin(*deleted, ", "),
        " from the cache (keep ", options_.keep_versions, ")"));
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
        Prune(info.model());
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
