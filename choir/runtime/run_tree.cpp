#include "choir/runtime/run_tree.hpp"

namespace choir::runtime {

std::string waiting_root(store::event_store& store, std::string_view run_id) {
  std::string root(run_id);
  for (int depth = 0; depth < 64; ++depth) {  // a bound against a corrupt cycle of parents
    auto run = store.get_run(root);
    if (!run.ok() || run->parent_run.empty()) break;
    auto parent = store.get_run(run->parent_run);
    if (!parent.ok() || parent->status != "waiting_consent") break;
    root = parent->run_id;
  }
  return root;
}

}  // namespace choir::runtime
