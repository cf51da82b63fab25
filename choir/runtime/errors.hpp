#pragma once
/// Error codes of choir/runtime: what a caller of an actor learns when its message could not be
/// delivered or answered.
#include <system_error>

#include "choir/core/result.hpp"

namespace choir::runtime {

enum class runtime_errc {
  died = 1,          ///< the actor died (killed, crashed past its restart budget, or its owner died) before answering
  unavailable,       ///< the actor system is stopping, or the actor cannot be reached or activated
  timed_out,         ///< no answer came before the call's deadline
  overloaded,        ///< the actor's mailbox or its pending-call bound is full and the caller chose not to wait
  not_found,         ///< no live actor has that name in that namespace
  name_taken,        ///< another live actor already has that name in that namespace
  wrong_type,        ///< the named actor is of another type than the handle asked for
  rejected,          ///< the actor refused the message by policy (a busy conversation with policy `reject`)
  interrupted,       ///< the work was stopped at a step boundary by a newer message (policy `interrupt`)
  invalid_argument,  ///< an option or argument is out of range
};

[[nodiscard]] const std::error_category& runtime_category() noexcept;
[[nodiscard]] std::error_code make_error_code(runtime_errc e) noexcept;

}  // namespace choir::runtime

template <>
struct std::is_error_code_enum<choir::runtime::runtime_errc> : std::true_type {};
