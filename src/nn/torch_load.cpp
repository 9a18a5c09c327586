// A reader for Python torch.save files (see torch_load.h): the zip container
// through caffe2::serialize::PyTorchStreamReader, the pickle through a small
// stack machine after Python's pickletools opcode table.
#include "nn/torch_load.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <map>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace scorch {
namespace {

// One pickle stack entry: a value, or a reference to a Python global
// (module.name) that a later REDUCE / persistent id consumes.
struct Item {
  c10::IValue value;
  std::string global;  // non-empty for globals
};

// Globals inside tuples (persistent ids carry the storage class) are kept as
// strings with this prefix, which no Python identifier can produce.
const std::string kGlobalTag = std::string("\0global:", 8);

at::ScalarType storage_dtype(const std::string& global, const std::string& path) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"torch.FloatStorage", at::kFloat}, {"torch.DoubleStorage", at::kDouble},
      {"torch.HalfStorage", at::kHalf},   {"torch.BFloat16Storage", at::kBFloat16},
      {"torch.LongStorage", at::kLong},   {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort}, {"torch.CharStorage", at::kChar},
      {"torch.ByteStorage", at::kByte},   {"torch.BoolStorage", at::kBool}};
  auto it = kTypes.find(global);
  SCORCH_CHECK(it != kTypes.end(), "'", path, "': unsupported tensor storage type ", global);
  return it->second;
}

class Unpickler {
 public:
  Unpickler(const std::string& path, caffe2::serialize::PyTorchStreamReader& reader,
            const char* data, size_t size)
      : path_(path), reader_(reader), data_(data), size_(size) {}

  c10::IValue run() {
    while (true) {
      const uint8_t op = read_u8();
      if (op == '.') break;  // STOP
      step(op);
    }
    check(stack_.size() == 1, "the pickle does not end with exactly one object");
    return value(std::move(stack_.back()));
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail(detail::concat("'", path_, "' is not a readable torch.save file: ", what, " (at byte ",
                        pos_, " of data.pkl)"));
  }
  void check(bool ok, const std::string& what) const {
    if (!ok) error(what);
  }

  const char* take(size_t n) {
    check(pos_ + n <= size_, "truncated pickle");
    const char* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint8_t read_u8() { return static_cast<uint8_t>(*take(1)); }
  template <typename T>
  T read_le() {  // little-endian integers (the host order on every target)
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  std::string read_line() {
    std::string s;
    while (true) {
      const char c = *take(1);
      if (c == '\n') return s;
      s.push_back(c);
    }
  }
  std::string read_string(size_t n) { return std::string(take(n), n); }

  c10::IValue value(Item item) const {
    if (!item.global.empty()) return c10::IValue(kGlobalTag + item.global);
    return std::move(item.value);
  }
  Item pop() {
    check(!stack_.empty(), "stack underflow");
    Item item = std::move(stack_.back());
    stack_.pop_back();
    return item;
  }
  void push(c10::IValue v) { stack_.push_back(Item{std::move(v), {}}); }
  size_t pop_mark() {
    check(!marks_.empty(), "MARK expected");
    const size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }
  std::vector<c10::IValue> pop_to_mark() {
    const size_t m = pop_mark();
    check(m <= stack_.size(), "bad MARK");
    std::vector<c10::IValue> out;
    for (size_t i = m; i < stack_.size(); ++i) out.push_back(value(std::move(stack_[i])));
    stack_.resize(m);
    return out;
  }
  void push_tuple(std::vector<c10::IValue> elements) {
    push(c10::ivalue::Tuple::create(std::move(elements)));
  }
  static c10::impl::GenericDict new_dict() {
    return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
  }

  void set_items(const std::vector<c10::IValue>& kv) {
    check(!stack_.empty() && stack_.back().value.isGenericDict(), "SETITEMS on a non-dict");
    check(kv.size() % 2 == 0, "odd SETITEMS");
    auto dict = stack_.back().value.toGenericDict();
    for (size_t i = 0; i < kv.size(); i += 2) dict.insert_or_assign(kv[i], kv[i + 1]);
  }
  void append_items(const std::vector<c10::IValue>& items) {
    check(!stack_.empty() && stack_.back().value.isList(), "APPENDS on a non-list");
    auto list = stack_.back().value.toList();
    for (const auto& v : items) list.push_back(v);
  }

  // The tensor storage named by a persistent id ('storage', type, key, location, numel).
  torch::Tensor load_storage(const c10::IValue& pid) {
    check(pid.isTuple(), "persistent id is not a tuple");
    const auto& e = pid.toTupleRef().elements();
    check(e.size() >= 5 && e[0].isString() && e[0].toStringRef() == "storage",
          "unknown persistent id");
    const std::string& type = e[1].toStringRef();
    check(type.rfind(kGlobalTag, 0) == 0, "storage type is not a class");
    const auto dtype = storage_dtype(type.substr(kGlobalTag.size()), path_);
    const std::string key = e[2].isString() ? e[2].toStringRef() : std::to_string(e[2].toInt());
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    const int64_t numel = e[4].toInt();
    auto storage = torch::empty({numel}, torch::dtype(dtype));
    if (numel > 0) {
      const std::string record = "data/" + key;
      check(reader_.hasRecord(record), "missing tensor record " + record);
      auto [ptr, bytes] = reader_.getRecord(record);
      check(bytes == static_cast<size_t>(numel) * storage.element_size(),
            "tensor record " + record + " has the wrong size");
      std::memcpy(storage.data_ptr(), ptr.get(), bytes);
    }
    storages_.emplace(key, storage);
    return storage;
  }

  static std::vector<int64_t> int_list(const c10::IValue& v) {
    std::vector<int64_t> out;
    for (const auto& e : v.toTupleRef().elements()) out.push_back(e.toInt());
    return out;
  }

  // REDUCE: callable(*args) for the globals torch.save emits.
  c10::IValue call(const std::string& global, const c10::IValue& args) {
    check(args.isTuple(), "REDUCE arguments are not a tuple");
    const auto& a = args.toTupleRef().elements();
    if (global == "collections.OrderedDict" || global == "builtins.dict") {
      auto dict = new_dict();
      if (!a.empty() && a[0].isList()) {  // OrderedDict([(k, v), ...])
        for (const auto& kv : a[0].toListRef()) {
          const auto& p = kv.toTupleRef().elements();
          dict.insert_or_assign(p.at(0), p.at(1));
        }
      }
      return dict;
    }
    if (global == "torch._utils._rebuild_tensor_v2" || global == "torch._utils._rebuild_tensor") {
      check(a.size() >= 4 && a[0].isTensor(), "bad _rebuild_tensor arguments");
      return a[0].toTensor().as_strided(int_list(a[2]), int_list(a[3]), a[1].toInt());
    }
    if (global == "torch._utils._rebuild_parameter" ||
        global == "torch._utils._rebuild_parameter_with_state") {
      check(!a.empty() && a[0].isTensor(), "bad _rebuild_parameter arguments");
      return a[0];
    }
    error("unsupported Python object " + global);
  }

  void step(uint8_t op) {
    // #lizard forgives: one case per pickle opcode, a table (Python pickle.py)
    switch (op) {
      case 0x80:
        read_u8();
        break;  // PROTO
      case 0x95:
        take(8);
        break;  // FRAME
      case '(':
        marks_.push_back(stack_.size());
        break;  // MARK
      case '}':
        push(new_dict());
        break;  // EMPTY_DICT
      case ']':
        push(c10::impl::GenericList(c10::AnyType::get()));
        break;  // EMPTY_LIST
      case ')':
        push_tuple({});
        break;  // EMPTY_TUPLE
      case 'N':
        push(c10::IValue());
        break;  // NONE
      case 0x88:
        push(true);
        break;  // NEWTRUE
      case 0x89:
        push(false);
        break;  // NEWFALSE
      case 'J':
        push(static_cast<int64_t>(read_le<int32_t>()));
        break;  // BININT
      case 'K':
        push(static_cast<int64_t>(read_u8()));
        break;  // BININT1
      case 'M':
        push(static_cast<int64_t>(read_le<uint16_t>()));
        break;      // BININT2
      case 0x8a: {  // LONG1
        const size_t n = read_u8();
        check(n <= 8, "integer wider than 64 bits");
        uint64_t v = 0;
        const char* p = take(n);
        for (size_t i = 0; i < n; ++i)
          v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
        if (n > 0 && n < 8 && (static_cast<uint8_t>(p[n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);
        push(static_cast<int64_t>(v));
        break;
      }
      case 'G': {  // BINFLOAT (big-endian)
        const char* p = take(8);
        char le[8];
        for (int i = 0; i < 8; ++i) le[i] = p[7 - i];
        double d;
        std::memcpy(&d, le, 8);
        push(d);
        break;
      }
      case 'X':
        push(read_string(read_le<uint32_t>()));
        break;  // BINUNICODE
      case 0x8c:
        push(read_string(read_u8()));
        break;  // SHORT_BINUNICODE
      case 0x8d:
        push(read_string(read_le<uint64_t>()));
        break;  // BINUNICODE8
      case 'T':
      case 'B':
        push(read_string(read_le<uint32_t>()));
        break;  // BINSTRING, BINBYTES
      case 'U':
      case 'C':
        push(read_string(read_u8()));
        break;  // SHORT_BINSTRING/BYTES
      case 't':
        push_tuple(pop_to_mark());
        break;  // TUPLE
      case 0x85: {
        auto a = value(pop());
        push_tuple({a});
        break;
      }  // TUPLE1
      case 0x86: {
        auto b = value(pop());
        auto a = value(pop());
        push_tuple({a, b});
        break;
      }
      case 0x87: {  // TUPLE3
        auto c = value(pop());
        auto b = value(pop());
        auto a = value(pop());
        push_tuple({a, b, c});
        break;
      }
      case 'l': {  // LIST
        c10::impl::GenericList list(c10::AnyType::get());
        for (auto& v : pop_to_mark()) list.push_back(std::move(v));
        push(std::move(list));
        break;
      }
      case 'd': {  // DICT
        auto kv = pop_to_mark();
        push(new_dict());
        set_items(kv);
        break;
      }
      case 'a': {
        auto v = value(pop());
        append_items({v});
        break;
      }  // APPEND
      case 'e':
        append_items(pop_to_mark());
        break;     // APPENDS
      case 's': {  // SETITEM
        auto v = value(pop());
        auto k = value(pop());
        set_items({k, v});
        break;
      }
      case 'u':
        set_items(pop_to_mark());
        break;  // SETITEMS
      case 'q':
        memo_[read_u8()] = stack_.at(stack_.size() - 1);
        break;  // BINPUT
      case 'r':
        memo_[read_le<uint32_t>()] = stack_.at(stack_.size() - 1);
        break;      // LONG_BINPUT
      case 0x94: {  // MEMOIZE
        check(!stack_.empty(), "MEMOIZE on an empty stack");
        const uint32_t id = static_cast<uint32_t>(memo_.size());
        memo_[id] = stack_.back();
        break;
      }
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        const uint32_t id = op == 'h' ? read_u8() : read_le<uint32_t>();
        auto it = memo_.find(id);
        check(it != memo_.end(), "unknown memo entry");
        stack_.push_back(it->second);
        break;
      }
      case 'c': {  // GLOBAL
        std::string module = read_line();
        std::string name = read_line();
        stack_.push_back(Item{{}, module + "." + name});
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = value(pop()).toStringRef();
        auto module = value(pop()).toStringRef();
        stack_.push_back(Item{{}, module + "." + name});
        break;
      }
      case 'R': {  // REDUCE
        auto args = value(pop());
        auto callable = pop();
        check(!callable.global.empty(), "REDUCE on a non-callable");
        push(call(callable.global, args));
        break;
      }
      case 0x81: {  // NEWOBJ
        auto args = value(pop());
        auto cls = pop();
        push(call(cls.global, args));
        break;
      }
      case 'b': {  // BUILD
        pop();     // state: OrderedDict's _metadata attribute, ignored
        check(!stack_.empty() &&
                  (stack_.back().value.isGenericDict() || stack_.back().value.isTensor()),
              "BUILD on an unsupported object");
        break;
      }
      case 'Q':
        push(load_storage(value(pop())));
        break;  // BINPERSID
      case '0':
        pop();
        break;  // POP
      case '1':
        pop_to_mark();
        break;  // POP_MARK
      case '2':
        check(!stack_.empty(), "DUP");
        stack_.push_back(stack_.back());
        break;
      default:
        error(detail::concat("unsupported pickle opcode 0x", std::hex, static_cast<int>(op)));
    }
  }

  const std::string& path_;
  caffe2::serialize::PyTorchStreamReader& reader_;
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  std::vector<Item> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Item> memo_;
  std::unordered_map<std::string, torch::Tensor> storages_;
};

}  // namespace

c10::IValue load_torch_file(const std::string& path) {
  {
    std::ifstream probe(path, std::ios::binary);
    SCORCH_CHECK(probe.good(), "'", path, "' cannot be read (missing or no permission)");
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    fail(detail::concat("'", path,
                        "' is not a torch.save zip archive (saved by PyTorch >= 1.6; "
                        "re-save older checkpoints with torch.save in a current PyTorch): ",
                        e.what_without_backtrace()));
  }
  SCORCH_CHECK(reader->hasRecord("data.pkl"), "'", path,
               "' is a zip archive without data.pkl, not a torch.save file");
  auto [pickle, size] = reader->getRecord("data.pkl");
  Unpickler unpickler(path, *reader, static_cast<const char*>(pickle.get()), size);
  return unpickler.run();
}

}  // namespace scorch
