#include "choir/runtime/errors.hpp"

#include <string>

namespace choir::runtime {
namespace {

class runtime_category_impl final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "choir.runtime"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<runtime_errc>(ev)) {
      case runtime_errc::died: return "actor died";
      case runtime_errc::unavailable: return "actor unavailable";
      case runtime_errc::timed_out: return "call timed out";
      case runtime_errc::overloaded: return "actor overloaded";
      case runtime_errc::not_found: return "no such actor";
      case runtime_errc::name_taken: return "actor name taken";
      case runtime_errc::wrong_type: return "actor of another type";
      case runtime_errc::rejected: return "message rejected";
      case runtime_errc::interrupted: return "interrupted";
      case runtime_errc::invalid_argument: return "invalid argument";
    }
    return "unknown runtime error";
  }
};

}  // namespace

const std::error_category& runtime_category() noexcept {
  static const runtime_category_impl category;
  return category;
}

std::error_code make_error_code(runtime_errc e) noexcept { return {static_cast<int>(e), runtime_category()}; }

}  // namespace choir::runtime
