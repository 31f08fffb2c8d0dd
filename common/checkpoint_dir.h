// The on-disk format of one checkpoint version, <model_dir>/<version>/, the
// one place that knows it (the store, the trainer's DownloadCheckpoint and
// the generator's follower all go through here):
//
//   <version>/               the canonical decimal of an int64 > 0
//     model.safetensors      the model (common/checkpoint.h)
//     optimizer.safetensors  optional: the optimizer state
//     loss.csv, ...          optional: extra plain files
//     manifest.json          {"version": N, "files": {"<name>": {"size": S,
//                             "sha256": "<64 hex>"}, ...}}, every file but
//                             itself
//
// A version appears atomically: its files are written into a temporary
// directory next to it, <model_dir>/.tmp-<tag>-<pid>-<random>, each fsynced,
// then the directory is fsynced, renamed to <version> (renameat2 with
// RENAME_NOREPLACE, so an existing version is never replaced) and the parent
// fsynced. A reader that looks only at version names never sees a partial
// version. The writer holds an flock on its temporary directory until it has
// renamed it, so a temporary directory nobody holds is an orphan of a writer
// that died (kill -9, power loss), and RemoveOrphanedTemporaryDirectories
// removes exactly those, in any process, at any time.
//
//   MICROGPT_RETURN_IF_ERROR(PublishVersionDirectory(
//       model_dir, 7, [&](const std::string& temp_dir) -> absl::Status {
//         ...write the files and manifest.json into temp_dir...
//       }));
//   MICROGPT_ASSIGN_OR_RETURN(Manifest manifest, ReadManifest(dir, 7));
//   MICROGPT_ASSIGN_OR_RETURN(std::string model,
//                             ReadVerifiedFile(dir, manifest, kModelFile));
#ifndef MICROGPT_COMMON_CHECKPOINT_DIR_H_
#define MICROGPT_COMMON_CHECKPOINT_DIR_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

inline constexpr absl::string_view kManifestFile = "manifest.json";
inline constexpr absl::string_view kModelFile = "model.safetensors";
inline constexpr absl::string_view kOptimizerFile = "optimizer.safetensors";

// INVALID_ARGUMENT unless version >= 1.
absl::Status ValidateVersion(int64_t version);

// A version directory's name: the canonical decimal of an int64 > 0 (digits
// only, no sign, no leading zero). Other names are not versions.
bool ParseVersionName(absl::string_view name, int64_t* version);

// A file name allowed in a version: not empty, no '/' or NUL, not starting
// with '.' (so never ".", ".." or a temporary name).
bool IsPlainFileName(absl::string_view name);

struct ManifestEntry {
  int64_t size = 0;
  std::string sha256;  // 64 lowercase hex digits

  bool operator==(const ManifestEntry& other) const {
    return size == other.size && sha256 == other.sha256;
  }
};

// What manifest.json says: the version and every other file of it.
struct Manifest {
  int64_t version = 0;
  std::map<std::string, ManifestEntry> files;  // by plain file name

  bool operator==(const Manifest& other) const {
    return version == other.version && files == other.files;
  }
};

// The manifest of `files` (name, bytes), hashing each. INVALID_ARGUMENT for
// an invalid version, a name that is not plain or is manifest.json, or a
// name given twice.
absl::StatusOr<Manifest> MakeManifest(
    int64_t version,
    const std::vector<std::pair<std::string, std::string>>& files);

// manifest.json's text.
std::string SerializeManifest(const Manifest& manifest);

// Parses manifest.json's text, which must be the manifest of `version`.
// DATA_LOSS saying what is wrong: not a JSON object, a key given twice, a
// missing or other "version", no "files" object, a name that is not plain
// (or manifest.json), an entry without a "size" (an int64 >= 0) and a
// "sha256" (64 lowercase hex digits).
absl::StatusOr<Manifest> ParseManifest(absl::string_view text, int64_t version);

// Reads and parses <dir>/manifest.json (at most 1 MiB); `text`, if not null,
// gets its bytes. NOT_FOUND when there is none, DATA_LOSS naming the file
// when it is unreadable or does not parse.
absl::StatusOr<Manifest> ReadManifest(const std::string& dir, int64_t version,
                                      std::string* text = nullptr);

// Reads <dir>/<name> and checks it against its manifest entry: NOT_FOUND
// when the manifest does not list it; DATA_LOSS when it is missing,
// unreadable, truncated, grown or corrupt (its SHA-256 differs).
absl::StatusOr<std::string> ReadVerifiedFile(const std::string& dir,
                                             const Manifest& manifest,
                                             absl::string_view name);

// Checks a whole version directory: its manifest.json is the one of
// `version`, it holds exactly the files the manifest lists and each matches
// its entry. DATA_LOSS otherwise.
absl::Status VerifyVersionDirectory(const std::string& dir, int64_t version);

// ".tmp-<tag>-<pid>-<16 random hex digits>": a name no version, model or
// plain file has, unique across processes.
std::string TemporaryName(absl::string_view tag);
bool IsTemporaryName(absl::string_view name);

// Removes every temporary entry of `dir` that no live process holds locked
// (see above), logging each. A missing `dir` has none. Returns the first
// error after trying every entry.
absl::Status RemoveOrphanedTemporaryDirectories(const std::string& dir);

// Publishes <model_dir>/<version> atomically (see above): creates model_dir
// and its parents if missing, calls `write` with a new temporary directory in
// it that this process holds locked, and commits what `write` put there
// (every file fsynced, manifest.json among them). ALREADY_EXISTS, without
// calling `write`, when the version exists, or at the commit when another
// writer got there first. On any error the temporary directory is removed and
// no version changes.
absl::Status PublishVersionDirectory(
    const std::string& model_dir, int64_t version,
    absl::FunctionRef<absl::Status(const std::string& temp_dir)> write);

// Deletes <model_dir>/<version> atomically: renamed to a temporary name
// (locked across the rename, so no cleaner takes it meanwhile), the rename
// fsynced, then removed. A reader sees the version whole or not at all; after
// a crash what is left is an orphan.
absl::Status DeleteVersionDirectory(const std::string& model_dir,
                                    int64_t version);

}  // namespace microgpt

#endif  // MICROGPT_COMMON_CHECKPOINT_DIR_H_
