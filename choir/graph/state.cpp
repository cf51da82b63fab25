#include "choir/graph/state.hpp"

#include <algorithm>
#include <limits>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "choir/core/json_text.hpp"
#include "choir/graph/errors.hpp"

namespace choir::graph {
namespace detail {

inline constexpr std::size_t leaf_capacity = 32;

/// A chunk of up to 32 elements. Slots are claimed in order with a CAS on `used`; a claimed slot
/// is constructed at once and never changed afterwards. Versions of a list see only the slots
/// below their own size, so a slot claimed by a newer version is invisible to older ones.
struct list_leaf {
  std::atomic<std::uint32_t> used{0};
  alignas(value) unsigned char storage[leaf_capacity * sizeof(value)];

  list_leaf() = default;
  list_leaf(const list_leaf&) = delete;
  list_leaf& operator=(const list_leaf&) = delete;
  ~list_leaf() {
    const auto n = used.load(std::memory_order_acquire);
    for (std::uint32_t i = 0; i < n; ++i) at(i).~value();
  }
  value& at(std::size_t i) { return *std::launder(reinterpret_cast<value*>(storage + i * sizeof(value))); }
  const value& at(std::size_t i) const {
    return *std::launder(reinterpret_cast<const value*>(storage + i * sizeof(value)));
  }
  /// Claims slot `index` if no version has used it yet and moves `item` there.
  bool try_claim(std::uint32_t index, value& item) {
    std::uint32_t expected = index;
    if (!used.compare_exchange_strong(expected, index + 1, std::memory_order_acq_rel)) return false;
    new (storage + index * sizeof(value)) value(std::move(item));
    return true;
  }
};

/// The table of chunks, claimed like a leaf's slots so that the newest version can add a chunk in
/// place; it doubles when full (amortized O(1)).
struct list_spine {
  explicit list_spine(std::size_t cap) : capacity(cap), leaves(new std::shared_ptr<list_leaf>[cap]) {}
  std::atomic<std::size_t> used{0};
  std::size_t capacity;
  std::unique_ptr<std::shared_ptr<list_leaf>[]> leaves;

  bool try_claim(std::size_t index, std::shared_ptr<list_leaf>& leaf) {
    if (index >= capacity) return false;
    std::size_t expected = index;
    if (!used.compare_exchange_strong(expected, index + 1, std::memory_order_acq_rel)) return false;
    leaves[index] = std::move(leaf);
    return true;
  }
  /// A new spine holding the first `count` chunks of `from` (if any) with room for `cap`.
  static std::shared_ptr<list_spine> copy_of(const list_spine* from, std::size_t count, std::size_t cap) {
    auto spine = std::make_shared<list_spine>(cap);
    for (std::size_t i = 0; i < count; ++i) spine->leaves[i] = from->leaves[i];
    spine->used.store(count, std::memory_order_release);
    return spine;
  }
};

/// What one key holds. A list keeps a lazily materialized JSON copy for readers that need one.
struct state_slot {
  explicit state_slot(value v) : json(std::move(v)) {}
  explicit state_slot(persistent_list l) : list(std::move(l)) {}

  const value& as_json() const {
    if (list) std::call_once(materialized, [this] { json = list->to_json(); });
    return json;
  }
  value_ref ref() const { return value_ref{&as_json(), list ? &*list : nullptr}; }
  value_ref lazy_ref() const {
    if (list) return value_ref{nullptr, &*list};
    return value_ref{&json, nullptr};
  }

  std::optional<persistent_list> list;
  mutable value json;
  mutable std::once_flag materialized;
};

struct state_entry {
  std::string key;
  std::shared_ptr<const state_slot> slot;
};

struct state_impl {
  std::vector<state_entry> entries;  // sorted by key
};

}  // namespace detail

namespace {

using detail::state_entry;
using detail::state_impl;
using detail::state_slot;

std::shared_ptr<const state_slot> make_slot(value v) {
  if (v.is_array()) return std::make_shared<const state_slot>(persistent_list::from_json(v));
  return std::make_shared<const state_slot>(std::move(v));
}

auto lower_bound(const std::vector<state_entry>& entries, std::string_view key) {
  // States are small: a linear scan beats binary search below a few dozen keys.
  if (entries.size() <= 16) {
    auto it = entries.begin();
    while (it != entries.end() && std::string_view(it->key) < key) ++it;
    return it;
  }
  return std::lower_bound(entries.begin(), entries.end(), key,
                          [](const state_entry& e, std::string_view k) { return std::string_view(e.key) < k; });
}

const state_slot* find_slot(const state_impl& impl, std::string_view key) {
  auto it = lower_bound(impl.entries, key);
  if (it == impl.entries.end() || it->key != key) return nullptr;
  return it->slot.get();
}

/// A mutable working copy of the entries, frozen into a new state at the end.
class state_editor {
 public:
  explicit state_editor(const state_impl& from) : entries_(from.entries) {}

  const state_slot* find(std::string_view key) const {
    auto it = lower_bound(entries_, key);
    return it != entries_.end() && it->key == key ? it->slot.get() : nullptr;
  }
  void put(std::string_view key, std::shared_ptr<const state_slot> slot) {
    auto it = lower_bound(entries_, key);
    if (it != entries_.end() && it->key == key) {
      entries_[static_cast<std::size_t>(it - entries_.begin())].slot = std::move(slot);
    } else {
      entries_.insert(entries_.begin() + (it - entries_.begin()), state_entry{std::string(key), std::move(slot)});
    }
  }
  void erase(std::string_view key) {
    auto it = lower_bound(entries_, key);
    if (it != entries_.end() && it->key == key) entries_.erase(entries_.begin() + (it - entries_.begin()));
  }
  std::shared_ptr<const state_impl> freeze() {
    auto impl = std::make_shared<state_impl>();
    impl->entries = std::move(entries_);
    return impl;
  }

  result<void> append(std::string_view key, value item) {
    const state_slot* slot = find(key);
    if (slot != nullptr && !slot->list) {
      return make_error(graph_errc::type_mismatch, "cannot append to '" + std::string(key) + "': it holds " +
                                                       std::string(slot->json.type_name()) + ", not a list");
    }
    persistent_list base = slot != nullptr ? *slot->list : persistent_list{};
    put(key, std::make_shared<const state_slot>(base.push_back(std::move(item))));
    return {};
  }
  result<void> extend(std::string_view key, const value& items) {
    if (!items.is_array()) {
      return make_error(graph_errc::type_mismatch, "cannot extend '" + std::string(key) + "' with " +
                                                       std::string(items.type_name()) + ": a list is needed");
    }
    const state_slot* slot = find(key);
    if (slot != nullptr && !slot->list) {
      return make_error(graph_errc::type_mismatch, "cannot extend '" + std::string(key) + "': it holds " +
                                                       std::string(slot->json.type_name()) + ", not a list");
    }
    persistent_list base = slot != nullptr ? *slot->list : persistent_list{};
    put(key, std::make_shared<const state_slot>(base.extend(items)));
    return {};
  }
  result<void> increment(std::string_view key, std::int64_t by) {
    const state_slot* slot = find(key);
    std::int64_t current = 0;
    if (slot != nullptr) {
      if (slot->list || !slot->json.is_number_integer()) {
        return make_error(graph_errc::type_mismatch, "cannot increment '" + std::string(key) + "': it holds " +
                                                         std::string(slot->list ? "a list" : slot->json.type_name()) +
                                                         ", not an integer");
      }
      current = slot->json.get<std::int64_t>();
    }
    std::int64_t next = 0;
    if (__builtin_add_overflow(current, by, &next)) {
      return make_error(graph_errc::type_mismatch, "incrementing '" + std::string(key) + "' overflows");
    }
    put(key, std::make_shared<const state_slot>(value(next)));
    return {};
  }

 private:
  std::vector<state_entry> entries_;
};

std::shared_ptr<const state_impl> empty_impl() {
  static const auto empty = std::make_shared<const state_impl>();
  return empty;
}

}  // namespace

// ---- persistent_list -------------------------------------------------------------------------

persistent_list persistent_list::from_json(const value& array) {
  persistent_list out;
  if (!array.is_array()) return out;
  for (const auto& item : array) out = out.push_back(item);
  return out;
}

const value& persistent_list::operator[](std::size_t i) const {
  return spine_->leaves[i / detail::leaf_capacity]->at(i % detail::leaf_capacity);
}

persistent_list persistent_list::push_back(value item) const {
  const std::size_t leaf_index = size_ / detail::leaf_capacity;
  const auto offset = static_cast<std::uint32_t>(size_ % detail::leaf_capacity);
  persistent_list out;
  out.size_ = size_ + 1;
  if (offset != 0) {
    detail::list_leaf& leaf = *spine_->leaves[leaf_index];
    if (leaf.try_claim(offset, item)) {
      out.spine_ = spine_;
      return out;
    }
    // Another version already appended here: copy this chunk's visible part and the chunk table.
    auto copy = std::make_shared<detail::list_leaf>();
    for (std::uint32_t i = 0; i < offset; ++i) {
      value element = leaf.at(i);
      copy->try_claim(i, element);
    }
    copy->try_claim(offset, item);
    out.spine_ = detail::list_spine::copy_of(spine_.get(), leaf_index, std::max<std::size_t>(4, 2 * (leaf_index + 1)));
    out.spine_->try_claim(leaf_index, copy);
    return out;
  }
  auto leaf = std::make_shared<detail::list_leaf>();
  leaf->try_claim(0, item);
  if (spine_ && spine_->try_claim(leaf_index, leaf)) {
    out.spine_ = spine_;
    return out;
  }
  out.spine_ = detail::list_spine::copy_of(spine_.get(), spine_ ? leaf_index : 0,
                                           std::max<std::size_t>(4, 2 * (leaf_index + 1)));
  out.spine_->try_claim(leaf_index, leaf);
  return out;
}

persistent_list persistent_list::extend(const value& items) const {
  persistent_list out = *this;
  if (!items.is_array()) return out;
  for (const auto& item : items) out = out.push_back(item);
  return out;
}

value persistent_list::to_json() const {
  value out = value::array();
  out.get_ref<value::array_t&>().reserve(size_);
  for (const auto& item : *this) out.push_back(item);
  return out;
}

bool persistent_list::equals(const persistent_list& other) const {
  if (size_ != other.size_) return false;
  for (std::size_t i = 0; i < size_; ++i) {
    if ((*this)[i] != other[i]) return false;
  }
  return true;
}

bool persistent_list::shares_storage_with(const persistent_list& other) const {
  return !empty() && !other.empty() && spine_->leaves[0] == other.spine_->leaves[0];
}

// ---- state_delta -----------------------------------------------------------------------------

state_delta& state_delta::set(std::string key, value v) {
  ops_.push_back({state_op::kind::set, std::move(key), std::move(v)});
  return *this;
}
state_delta& state_delta::append(std::string key, value item) {
  ops_.push_back({state_op::kind::append, std::move(key), std::move(item)});
  return *this;
}
state_delta& state_delta::extend(std::string key, value items) {
  ops_.push_back({state_op::kind::extend, std::move(key), std::move(items)});
  return *this;
}
state_delta& state_delta::increment(std::string key, std::int64_t by) {
  ops_.push_back({state_op::kind::increment, std::move(key), value(by)});
  return *this;
}
state_delta& state_delta::remove(std::string key) {
  ops_.push_back({state_op::kind::remove, std::move(key), value()});
  return *this;
}

namespace {
constexpr const char* op_names[] = {"set", "append", "extend", "increment", "remove"};
}

value state_delta::to_json() const {
  value out = value::array();
  for (const auto& op : ops_) {
    value entry = {{"op", op_names[static_cast<int>(op.op)]}, {"key", op.key}};
    if (op.op != state_op::kind::remove) entry["value"] = op.operand;
    out.push_back(std::move(entry));
  }
  return out;
}

std::string state_delta::to_json_text() const {
  // The keys in the order the library writes an object's: sorted.
  std::string out = "[";
  for (const auto& op : ops_) {
    if (out.size() > 1) out += ',';
    out += "{\"key\":";
    append_json_string(out, op.key);
    out += ",\"op\":\"";
    out += op_names[static_cast<int>(op.op)];
    out += '"';
    if (op.op != state_op::kind::remove) {
      out += ",\"value\":";
      append_json(out, op.operand);
    }
    out += '}';
  }
  out += ']';
  return out;
}

result<state_delta> state_delta::from_json(const value& ops) {
  if (!ops.is_array()) return make_error(graph_errc::invalid_state, "a state delta is a JSON array of ops");
  state_delta delta;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const value& entry = ops[i];
    const std::string where = "delta op " + std::to_string(i);
    if (!entry.is_object() || !entry.contains("op") || !entry["op"].is_string() || !entry.contains("key") ||
        !entry["key"].is_string()) {
      return make_error(graph_errc::invalid_state, where + ": needs a string 'op' and a string 'key'");
    }
    const auto& name = entry["op"].get_ref<const std::string&>();
    const auto it = std::find(std::begin(op_names), std::end(op_names), name);
    if (it == std::end(op_names)) {
      return make_error(graph_errc::invalid_state, where + ": unknown op '" + name + "'");
    }
    const auto kind = static_cast<state_op::kind>(it - std::begin(op_names));
    value operand = entry.contains("value") ? entry["value"] : value();
    if (kind != state_op::kind::remove && !entry.contains("value")) {
      return make_error(graph_errc::invalid_state, where + ": op '" + name + "' needs a 'value'");
    }
    if (kind == state_op::kind::increment && !operand.is_number_integer()) {
      return make_error(graph_errc::invalid_state, where + ": increment needs an integer 'value'");
    }
    if (kind == state_op::kind::extend && !operand.is_array()) {
      return make_error(graph_errc::invalid_state, where + ": extend needs an array 'value'");
    }
    delta.ops_.push_back({kind, entry["key"].get<std::string>(), std::move(operand)});
  }
  return delta;
}

// ---- state -----------------------------------------------------------------------------------

state::state() : impl_(empty_impl()) {}
state::state(std::shared_ptr<const detail::state_impl> impl) : impl_(std::move(impl)) {}

result<state> state::from_json(const value& object) {
  if (!object.is_object()) {
    return make_error(graph_errc::invalid_state, std::string("state must be a JSON object, not ") + object.type_name());
  }
  auto impl = std::make_shared<state_impl>();
  impl->entries.reserve(object.size());
  for (const auto& [key, v] : object.items()) impl->entries.push_back({key, make_slot(v)});
  std::sort(impl->entries.begin(), impl->entries.end(),
            [](const state_entry& a, const state_entry& b) { return a.key < b.key; });
  return state(std::move(impl));
}

std::size_t state::size() const noexcept { return impl_->entries.size(); }
bool state::contains(std::string_view key) const { return find_slot(*impl_, key) != nullptr; }

value_ref state::find(std::string_view key) const {
  const state_slot* slot = find_slot(*impl_, key);
  return slot != nullptr ? slot->lazy_ref() : value_ref{};
}

const value* state::get_if(std::string_view key) const {
  const state_slot* slot = find_slot(*impl_, key);
  return slot != nullptr ? &slot->as_json() : nullptr;
}

value state::get(std::string_view key) const {
  const value* v = get_if(key);
  return v != nullptr ? *v : value();
}

std::vector<std::string> state::keys() const {
  std::vector<std::string> out;
  out.reserve(impl_->entries.size());
  for (const auto& e : impl_->entries) out.push_back(e.key);
  return out;
}

state state::update(std::string_view key, value v) const {
  state_editor editor(*impl_);
  editor.put(key, make_slot(std::move(v)));
  return state(editor.freeze());
}

result<state> state::append(std::string_view key, value item) const {
  state_editor editor(*impl_);
  CHOIR_CHECK(editor.append(key, std::move(item)));
  return state(editor.freeze());
}

result<state> state::extend(std::string_view key, const value& items) const {
  state_editor editor(*impl_);
  CHOIR_CHECK(editor.extend(key, items));
  return state(editor.freeze());
}

result<state> state::increment(std::string_view key, std::int64_t by) const {
  state_editor editor(*impl_);
  CHOIR_CHECK(editor.increment(key, by));
  return state(editor.freeze());
}

state state::wipe(std::initializer_list<std::string_view> keys) const {
  state_editor editor(*impl_);
  for (auto key : keys) editor.erase(key);
  return state(editor.freeze());
}

state state::wipe(const std::vector<std::string>& keys) const {
  state_editor editor(*impl_);
  for (const auto& key : keys) editor.erase(key);
  return state(editor.freeze());
}

state state::subset(const std::vector<std::string>& keys) const {
  auto impl = std::make_shared<state_impl>();
  for (const auto& e : impl_->entries) {
    if (std::find(keys.begin(), keys.end(), e.key) != keys.end()) impl->entries.push_back(e);
  }
  return state(std::move(impl));
}

state state::merge(const state& other) const {
  state_editor editor(*impl_);
  for (const auto& e : other.impl_->entries) editor.put(e.key, e.slot);
  return state(editor.freeze());
}

result<state> state::apply(const state_delta& delta) const {
  if (delta.empty()) return *this;
  state_editor editor(*impl_);
  for (const auto& op : delta.ops()) {
    switch (op.op) {
      case state_op::kind::set: editor.put(op.key, make_slot(op.operand)); break;
      case state_op::kind::append: CHOIR_CHECK(editor.append(op.key, op.operand)); break;
      case state_op::kind::extend: CHOIR_CHECK(editor.extend(op.key, op.operand)); break;
      case state_op::kind::increment:
        if (!op.operand.is_number_integer()) {
          return make_error(graph_errc::type_mismatch, "increment of '" + op.key + "' needs an integer amount");
        }
        CHOIR_CHECK(editor.increment(op.key, op.operand.get<std::int64_t>()));
        break;
      case state_op::kind::remove: editor.erase(op.key); break;
    }
  }
  return state(editor.freeze());
}

value state::to_json() const {
  value out = value::object();
  for (const auto& e : impl_->entries) out[e.key] = e.slot->as_json();
  return out;
}

bool state::operator==(const state& other) const {
  if (impl_ == other.impl_) return true;
  if (impl_->entries.size() != other.impl_->entries.size()) return false;
  for (std::size_t i = 0; i < impl_->entries.size(); ++i) {
    const auto& a = impl_->entries[i];
    const auto& b = other.impl_->entries[i];
    if (a.key != b.key) return false;
    if (a.slot == b.slot) continue;
    if (static_cast<bool>(a.slot->list) != static_cast<bool>(b.slot->list)) return false;
    if (a.slot->list ? !a.slot->list->equals(*b.slot->list) : a.slot->json != b.slot->json) return false;
  }
  return true;
}

bool state::shares_key_with(const state& other, std::string_view key) const {
  const state_slot* a = find_slot(*impl_, key);
  return a != nullptr && a == find_slot(*other.impl_, key);
}

}  // namespace choir::graph
