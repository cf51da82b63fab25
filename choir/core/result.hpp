#pragma once
/// Errors as values at layer boundaries: `result<T>` holds either a `T` or an `error`.
///
/// Each layer defines its own error enum (`core_errc` here, `graph_errc` in choir/graph, …) and
/// registers it as a `std::error_code` enum, so that an `error` carries a code a program can test
/// and a message, written for a person, that names the input at fault.
#include <cassert>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace choir {

/// An error: a code from one layer's enum and a message naming the input at fault.
struct error {
  std::error_code code;
  std::string message;

  /// The code's category name and value followed by the message, for logs.
  [[nodiscard]] std::string describe() const;
};

/// Makes an `error` from any registered error enum value.
template <class Enum>
requires std::is_error_code_enum_v<Enum>
[[nodiscard]] error make_error(Enum code, std::string message) {
  return error{make_error_code(code), std::move(message)};
}

/// Makes an `error` from a code already held (for example, to add context to another error).
[[nodiscard]] inline error make_error(std::error_code code, std::string message) {
  return error{code, std::move(message)};
}

/// Either a value of type `T` or an `error`. Accessing the wrong alternative is a programming
/// error (it asserts in debug builds and is undefined otherwise).
template <class T>
class [[nodiscard]] result {
 public:
  using value_type = T;

  result(T v) : storage_(std::in_place_index<0>, std::move(v)) {}      // NOLINT(google-explicit-constructor)
  result(error e) : storage_(std::in_place_index<1>, std::move(e)) {}  // NOLINT(google-explicit-constructor)
  template <class U>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, result> &&
           !std::is_same_v<std::remove_cvref_t<U>, error> && !std::is_same_v<std::remove_cvref_t<U>, T>) result(U&& v)
      : storage_(std::in_place_index<0>, T(std::forward<U>(v))) {}  // NOLINT

  [[nodiscard]] bool ok() const noexcept { return storage_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  [[nodiscard]] T& value() & {
    assert(ok());
    return *std::get_if<0>(&storage_);
  }
  [[nodiscard]] const T& value() const& {
    assert(ok());
    return *std::get_if<0>(&storage_);
  }
  [[nodiscard]] T&& value() && {
    assert(ok());
    return std::move(*std::get_if<0>(&storage_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  [[nodiscard]] const error& err() const& {
    assert(!ok());
    return *std::get_if<1>(&storage_);
  }
  [[nodiscard]] error&& err() && {
    assert(!ok());
    return std::move(*std::get_if<1>(&storage_));
  }

 private:
  std::variant<T, error> storage_;
};

/// The `void` case: success or an `error`.
template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error e) : error_(std::move(e)), failed_(true) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] const error& err() const& {
    assert(!ok());
    return error_;
  }
  [[nodiscard]] error&& err() && {
    assert(!ok());
    return std::move(error_);
  }

 private:
  error error_;
  bool failed_ = false;
};

/// Errors of choir/core.
enum class core_errc {
  invalid_argument = 1,  ///< an argument is malformed or out of range
  parse_error,           ///< a document (JSON, YAML, an id) could not be parsed
  io_error,              ///< the operating system refused a read or write
  not_found,             ///< a named thing does not exist
  timed_out,             ///< a wait ran past its deadline
};

[[nodiscard]] const std::error_category& core_category() noexcept;
[[nodiscard]] std::error_code make_error_code(core_errc e) noexcept;

}  // namespace choir

template <>
struct std::is_error_code_enum<choir::core_errc> : std::true_type {};

/// Propagates the error of a `result` expression, or binds its value.
/// Usage: `CHOIR_TRY(auto parsed, parse(text));`
#define CHOIR_TRY_CONCAT_INNER(a, b) a##b
#define CHOIR_TRY_CONCAT(a, b) CHOIR_TRY_CONCAT_INNER(a, b)
#define CHOIR_TRY(decl, expr) CHOIR_TRY_IMPL(CHOIR_TRY_CONCAT(choir_try_, __LINE__), decl, expr)
#define CHOIR_TRY_IMPL(tmp, decl, expr)       \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return std::move(tmp).err(); \
  decl = std::move(tmp).value()
/// Propagates the error of a `result<void>` expression.
#define CHOIR_CHECK(expr)                                                                     \
  do {                                                                                        \
    if (auto choir_check_ = (expr); !choir_check_.ok()) return std::move(choir_check_).err(); \
  } while (false)
