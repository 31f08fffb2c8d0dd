// Early-return helpers for absl::Status and absl::StatusOr.
// Debian's Abseil 20220623 ships neither RETURN_IF_ERROR nor ASSIGN_OR_RETURN.
//
//   MICROGPT_RETURN_IF_ERROR(file.Write(bytes));
//   MICROGPT_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::FromFile(path));
#ifndef MICROGPT_COMMON_STATUS_MACROS_H_
#define MICROGPT_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MICROGPT_RETURN_IF_ERROR(expr)                  \
  do {                                                  \
    if (absl::Status status_ = (expr); !status_.ok()) { \
      return status_;                                   \
    }                                                   \
  } while (0)

#define MICROGPT_STATUS_CONCAT_INNER_(a, b) a##b
#define MICROGPT_STATUS_CONCAT_(a, b) MICROGPT_STATUS_CONCAT_INNER_(a, b)

#define MICROGPT_ASSIGN_OR_RETURN(lhs, expr) \
  MICROGPT_ASSIGN_OR_RETURN_IMPL_(           \
      MICROGPT_STATUS_CONCAT_(statusor_, __LINE__), lhs, expr)

// NOLINTBEGIN(bugprone-macro-parentheses): lhs is a declaration.
#define MICROGPT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = *std::move(statusor)
// NOLINTEND(bugprone-macro-parentheses)

#endif  // MICROGPT_COMMON_STATUS_MACROS_H_
