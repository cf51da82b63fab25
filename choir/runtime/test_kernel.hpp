#pragma once
/// A kernel for tests, in a fresh temporary folder: a SQLite store every thread may use, its audit
/// log, and a gate over a policy given as YAML, serving the given model aliases. Test-only: no
/// production code includes this header.
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "choir/kernel/audit.hpp"
#include "choir/kernel/policy.hpp"
#include "choir/runtime/gate.hpp"
#include "choir/store/synchronized.hpp"

namespace choir::runtime::test_support {

struct test_kernel {
  std::filesystem::path dir;
  std::shared_ptr<store::event_store> store;
  kernel::audit_options audit;
  std::shared_ptr<runtime::gate> gate;

  /// Makes it under `<tmp>/choir-<name>-<pid>` (emptied first). Errors: the policy's or the
  /// audit log's.
  static result<test_kernel> make(const std::string& name, std::string_view policy_yaml,
                                  std::vector<std::string> models = {}) {
    test_kernel k;
    k.dir = std::filesystem::temp_directory_path() / ("choir-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(k.dir);
    std::filesystem::create_directories(k.dir);
    CHOIR_TRY(auto opened, store::open_sqlite_store((k.dir / "choir.db").string()));
    k.store = store::synchronized(std::move(opened));
    k.audit.key_file = (k.dir / "audit.key").string();
    k.audit.head_file = (k.dir / "audit.head").string();
    CHOIR_TRY(auto audit, kernel::audit_log::open(k.store, k.audit));
    CHOIR_TRY(auto policy, kernel::policy::load(policy_yaml, "policy.yaml"));
    auto node = kernel::node_resources::of_this_machine();
    node.models = std::move(models);
    k.gate = std::make_shared<runtime::gate>(k.store, std::shared_ptr<kernel::audit_log>(std::move(audit)),
                                             std::make_shared<const kernel::policy>(std::move(policy)),
                                             gate_options{.node = node});
    return k;
  }
};

}  // namespace choir::runtime::test_support
