#include "choir/core/result.hpp"

#include <string>

namespace choir {
namespace {

class core_category_impl final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "choir.core"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<core_errc>(ev)) {
      case core_errc::invalid_argument: return "invalid argument";
      case core_errc::parse_error: return "parse error";
      case core_errc::io_error: return "i/o error";
      case core_errc::not_found: return "not found";
      case core_errc::timed_out: return "timed out";
    }
    return "unknown core error";
  }
};

}  // namespace

std::string error::describe() const {
  std::string out = code.category().name();
  out += ": ";
  out += code.message();
  if (!message.empty()) {
    out += ": ";
    out += message;
  }
  return out;
}

const std::error_category& core_category() noexcept {
  static const core_category_impl category;
  return category;
}

std::error_code make_error_code(core_errc e) noexcept { return {static_cast<int>(e), core_category()}; }

}  // namespace choir
