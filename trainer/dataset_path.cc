#include "trainer/dataset_path.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace microgpt {
namespace {

namespace fs = std::filesystem;

// True when `path` is `root` or lies below it; both canonical.
bool IsWithin(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    // A trailing "" element (root ending in '/') matches anything.
    if (r->empty()) continue;
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> ResolveDatasetPath(absl::string_view root,
                                               absl::string_view relative) {
  if (relative.empty()) {
    return absl::InvalidArgumentError("dataset_path is empty");
  }
  if (relative.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("dataset_path contains a NUL character");
  }
  const fs::path rel{std::string(relative)};
  if (rel.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset_path \"", relative,
        "\" must be relative to the trainer's data root, not absolute"));
  }
  for (const fs::path& part : rel) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          "dataset_path \"", relative, "\" must not contain \"..\""));
    }
  }

  std::error_code error;
  const fs::path canonical_root =
      fs::canonical(fs::path(std::string(root)), error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("the trainer's data root \"", root,
                     "\" is not usable: ", error.message()));
  }
  // weakly_canonical resolves the symlinks of the part that exists; a dangling
  // link at the end is followed by hand, so a link pointing out of the root is
  // caught even when its target does not exist (yet).
  fs::path resolved = fs::weakly_canonical(canonical_root / rel, error);
  std::error_code no_such_file;  // symlink_status of a missing path: not a link
  for (int links = 0;
       !error && fs::is_symlink(fs::symlink_status(resolved, no_such_file));
       ++links) {
    if (links == 40) {
      error = std::make_error_code(std::errc::too_many_symbolic_link_levels);
      break;
    }
    const fs::path target = fs::read_symlink(resolved, error);
    if (error) break;
    resolved = fs::weakly_canonical(resolved.parent_path() / target, error);
  }
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset_path \"", relative,
                     "\" cannot be resolved: ", error.message()));
  }
  if (!IsWithin(resolved, canonical_root) || resolved == canonical_root) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset_path \"", relative, "\" resolves outside the data root"));
  }
  const fs::file_status status = fs::status(resolved, error);
  if (!fs::exists(status)) {
    return absl::NotFoundError(absl::StrCat(
        "dataset_path \"", relative, "\" does not exist under the data root"));
  }
  if (!fs::is_regular_file(status)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset_path \"", relative, "\" is not a regular file"));
  }
  return resolved.string();
}

}  // namespace microgpt
