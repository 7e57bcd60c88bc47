// Status propagation macros (Debian's Abseil 20220623 has no status_macros.h).
#ifndef CLINK_GATEWAY_COMMON_STATUS_MACROS_H_
#define CLINK_GATEWAY_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GATEWAY_STATUS_CONCAT_INNER_(a, b) a##b
#define GATEWAY_STATUS_CONCAT_(a, b) GATEWAY_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function with `expr`'s status when it is not OK.
#define GATEWAY_RETURN_IF_ERROR(expr)                                     \
  do {                                                                    \
    if (::absl::Status gateway_status_ = (expr); !gateway_status_.ok()) { \
      return gateway_status_;                                             \
    }                                                                     \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status,
// otherwise moves the value into `lhs` (a declaration such as `auto x` or an
// existing variable).
#define GATEWAY_ASSIGN_OR_RETURN(lhs, rexpr) \
  GATEWAY_ASSIGN_OR_RETURN_IMPL_(            \
      GATEWAY_STATUS_CONCAT_(gateway_statusor_, __LINE__), lhs, rexpr)

#define GATEWAY_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = *std::move(statusor)

#endif  // CLINK_GATEWAY_COMMON_STATUS_MACROS_H_
