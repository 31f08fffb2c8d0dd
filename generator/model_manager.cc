#include "generator/model_manager.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/root_watch.h"
#include "common/status_macros.h"

namespace microgpt {

std::string DefaultLeaseHolder() {
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    host[0] = 'h';
    host[1] = '\0';
  }
  std::string holder = host;
  for (char& c : holder) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') c = '_';
  }
  if (!absl::ascii_isalnum(holder[0])) holder.insert(0, "h");
  const std::string pid = absl::StrCat("-", ::getpid());
  holder.resize(std::min(holder.size(), 64 - pid.size()));
  return holder + pid;
}

ModelManager::ModelManager(ModelManagerOptions options)
    : options_(std::move(options)), store_(options_.root) {}

ModelManager::~ModelManager() { Stop(); }

absl::StatusOr<std::shared_ptr<const ServableModel>> ModelManager::Load(
    absl::string_view name, int64_t version) const {
  MICROGPT_ASSIGN_OR_RETURN(ModelCheckpoint checkpoint,
                            store_.LoadModel(name, version));
  if (checkpoint.tokenizer.vocab_size() != checkpoint.config.vocab_size) {
    return absl::DataLossError(
        absl::StrCat("vocabulary has ", checkpoint.tokenizer.vocab_size(),
                     " tokens but the config says vocab_size ",
                     checkpoint.config.vocab_size));
  }
  MICROGPT_ASSIGN_OR_RETURN(
      Model model, Model::FromParameters(checkpoint.config,
                                         std::move(checkpoint.parameters)));
  return std::make_shared<const ServableModel>(ServableModel{
      std::string(name), version, checkpoint.step, checkpoint.loss,
      std::move(model), std::move(checkpoint.tokenizer), checkpoint.format,
      checkpoint.val_loss});
}

std::vector<std::shared_ptr<const ServableModel>> ModelManager::PollModel(
    const std::string& name) {
  std::vector<std::shared_ptr<const ServableModel>> loaded_now;
  absl::StatusOr<std::vector<int64_t>> on_disk = store_.ListVersions(name);
  if (!on_disk.ok()) {
    LogWarning(absl::StrCat("model ", name, ": cannot list versions: ",
                            on_disk.status().ToString()));
    return loaded_now;
  }
  Versions current;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = models_.find(name); it != models_.end()) current = it->second;
  }
  // Candidates, newest first: loaded versions plus loadable ones on disk.
  std::set<int64_t, std::greater<>> candidates;
  for (const auto& servable : current) candidates.insert(servable->version);
  for (int64_t version : *on_disk) {
    if (version > 0 && failed_.count({name, version}) == 0) {
      candidates.insert(version);
    }
  }
  const size_t keep =
      static_cast<size_t>(std::max(1, options_.versions_to_keep));
  Versions next;
  for (int64_t version : candidates) {
    if (next.size() == keep) break;
    auto it = std::find_if(current.begin(), current.end(), [&](const auto& s) {
      return s->version == version;
    });
    if (it != current.end()) {
      next.push_back(*it);
      continue;
    }
    absl::StatusOr<std::shared_ptr<const ServableModel>> servable =
        Load(name, version);
    if (!servable.ok()) {
      LogWarning(absl::StrCat("model ", name, " version ", version,
                              " failed to load and will not be retried: ",
                              servable.status().ToString()));
      failed_.insert({name, version});
      absl::MutexLock lock(&mu_);
      ++failed_loads_;
      continue;
    }
    LogInfo(absl::StrCat("loaded model ", name, " version ", version, " (step ",
                         (*servable)->step, ", loss ", (*servable)->loss, ")"));
    loaded_now.push_back(*servable);
    next.push_back(*std::move(servable));
  }
  if (next.empty()) return loaded_now;
  for (const auto& servable : current) {
    if (std::find(next.begin(), next.end(), servable) == next.end()) {
      LogInfo(absl::StrCat("unloading model ", name, " version ",
                           servable->version));
    }
  }
  absl::MutexLock lock(&mu_);
  loads_ += static_cast<int64_t>(loaded_now.size());
  models_[name] = std::move(next);  // readers keep their own references
  return loaded_now;
}

absl::Status ModelManager::PollOnce() {
  std::vector<std::shared_ptr<const ServableModel>> loaded;
  {
    absl::MutexLock poll_lock(&poll_mu_);
    MICROGPT_ASSIGN_OR_RETURN(std::vector<std::string> names,
                              store_.ListModels());
    for (const std::string& name : names) {
      std::vector<std::shared_ptr<const ServableModel>> model_loaded =
          PollModel(name);
      loaded.insert(loaded.end(), model_loaded.begin(), model_loaded.end());
    }
    RenewLease();
  }
  if (options_.on_load) {
    for (const auto& servable : loaded) options_.on_load(*servable);
  }
  return absl::OkStatus();
}

void ModelManager::RenewLease() {
  if (options_.lease_holder.empty()) return;
  std::map<std::string, std::vector<int64_t>> versions;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, servables] : models_) {
      for (const auto& servable : servables) {
        versions[name].push_back(servable->version);
      }
    }
  }
  const absl::Time now = absl::Now();
  if (versions == leased_ && !lease_failing_ &&
      now - lease_written_ < options_.lease_refresh) {
    return;
  }
  const absl::Status written =
      store_.WriteLease(options_.lease_holder, versions);
  if (!written.ok()) {
    if (!lease_failing_) {  // once, not every poll
      LogWarning(absl::StrCat(
          "cannot write the lease ", options_.lease_holder,
          " on the versions served: ", written.ToString(),
          "; a trainer with --keep_versions may delete them from disk"));
    }
    lease_failing_ = true;
    return;
  }
  if (lease_failing_) {
    LogInfo(absl::StrCat("lease ", options_.lease_holder, " written again"));
  }
  lease_failing_ = false;
  leased_ = std::move(versions);
  lease_written_ = now;
}

absl::StatusOr<std::shared_ptr<const ServableModel>> ModelManager::Get(
    absl::string_view name, int64_t version) const {
  absl::StatusOr<std::shared_ptr<const ServableModel>> found =
      GetLoaded(name, version);
  if (!absl::IsNotFound(found.status()) || version != 0) return found;
  // Published but not loaded yet (the next poll loads it): say so, so that a
  // client that just trained knows to retry. Outside the lock: a listing.
  absl::StatusOr<std::vector<int64_t>> on_disk = ValidateModelName(name).ok()
                                                     ? store_.ListVersions(name)
                                                     : absl::NotFoundError("");
  if (on_disk.ok() && !on_disk->empty()) {
    return absl::NotFoundError(absl::StrCat(
        "model '", name, "' is not loaded yet: version ", on_disk->back(),
        " is published and loads at the next scan of the checkpoint root "
        "(every --poll_interval); retry in a moment"));
  }
  return found;
}

absl::StatusOr<std::shared_ptr<const ServableModel>> ModelManager::GetLoaded(
    absl::string_view name, int64_t version) const {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("version must be >= 0 (0 = latest), got ", version));
  }
  absl::MutexLock lock(&mu_);
  auto it = models_.end();
  if (name.empty()) {
    if (models_.empty()) {
      return absl::UnavailableError("no model is loaded yet");
    }
    if (models_.size() > 1) {
      std::vector<std::string> names;
      for (const auto& [model_name, versions] : models_) {
        names.push_back(model_name);
      }
      return absl::InvalidArgumentError(
          absl::StrCat("model must be set: this server has several models (",
                       absl::StrJoin(names, ", "), ")"));
    }
    it = models_.begin();
  } else {
    it = models_.find(std::string(name));
    if (it == models_.end()) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' is not loaded"));
    }
  }
  const Versions& versions = it->second;
  if (version == 0) return versions.front();
  for (const auto& servable : versions) {
    if (servable->version == version) return servable;
  }
  std::vector<int64_t> loaded;
  for (const auto& servable : versions) loaded.push_back(servable->version);
  return absl::NotFoundError(absl::StrCat(
      "version ", version, " of model '", it->first,
      "' is not loaded (loaded: ", absl::StrJoin(loaded, ", "), ")"));
}

std::vector<ModelManager::LoadedModel> ModelManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<LoadedModel> list;
  list.reserve(models_.size());
  for (const auto& [name, versions] : models_) {
    list.push_back({name, versions});
  }
  return list;
}

int ModelManager::num_loaded_versions() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [name, versions] : models_) {
    n += static_cast<int>(versions.size());
  }
  return n;
}

int64_t ModelManager::loads() const {
  absl::MutexLock lock(&mu_);
  return loads_;
}

int64_t ModelManager::failed_loads() const {
  absl::MutexLock lock(&mu_);
  return failed_loads_;
}

void ModelManager::StartPolling(absl::Duration interval) {
  absl::StatusOr<std::unique_ptr<RootWatch>> watch =
      RootWatch::Open(options_.root);
  if (watch.ok()) {
    watch_ = *std::move(watch);
  } else {
    LogWarning(absl::StrCat("no change notifications for ", options_.root, " (",
                            watch.status().message(),
                            "): new versions load at the next poll"));
  }
  poll_thread_ = std::thread([this, interval] {
    while (true) {
      if (absl::Status status = PollOnce(); !status.ok()) {
        LogWarning(absl::StrCat("checkpoint poll failed: ", status.ToString()));
      }
      // A publish under the root wakes the scan at once; the interval is
      // the fallback where no event comes.
      const bool stop = watch_ != nullptr
                            ? watch_->Wait(interval) == RootWatch::kInterrupted
                            : stop_.WaitForNotificationWithTimeout(interval);
      if (stop) return;
    }
  });
}

void ModelManager::Stop() {
  absl::MutexLock lock(&stop_mu_);
  if (stop_.HasBeenNotified()) return;
  stop_.Notify();
  if (watch_ != nullptr) watch_->Interrupt();
  if (poll_thread_.joinable()) poll_thread_.join();
  absl::MutexLock poll_lock(&poll_mu_);
  if (lease_written_ != absl::InfinitePast()) {
    if (absl::Status removed = store_.RemoveLease(options_.lease_holder);
        !removed.ok()) {
      LogWarning(absl::StrCat("cannot remove the lease ", options_.lease_holder,
                              ": ", removed.ToString()));
    }
  }
}

}  // namespace microgpt
