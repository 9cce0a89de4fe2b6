//===- Manifest.cpp - parse and validate manifest.json (version 3) --------===//
//
// Every accessor below checks the JSON type before reading, so malformed
// input produces a located message, never an exception from the JSON
// library (only json::parse may throw, and it is caught).
//
//===----------------------------------------------------------------------===//
#include "moeq/Runtime/Plan.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <sys/stat.h>

using namespace moeq::runtime;
using json = nlohmann::json;

namespace {

using HostResolver = std::function<Status(const std::string &, int &)>;

/// Nesting bound for expressions: a guard against pathological input.
constexpr int kMaxExpressionDepth = 64;

std::string member(const std::string &where, const std::string &key) {
  return where.empty() ? key : where + "." + key;
}

std::string item(const std::string &where, size_t i) {
  return where + "[" + std::to_string(i) + "]";
}

Status fail(const std::string &where, const std::string &problem) {
  return Status::error(where.empty() ? problem : where + ": " + problem);
}

const json *findMember(const json &object, const char *key) {
  if (!object.is_object())
    return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

Status requireObject(const json &value, const std::string &where) {
  if (!value.is_object())
    return fail(where, std::string("expected an object, found ") + value.type_name());
  return Status();
}

Status requireMember(const json &object, const char *key, const std::string &where,
                     const json *&out) {
  out = findMember(object, key);
  if (!out)
    return fail(where, std::string("missing \"") + key + "\"");
  return Status();
}

Status readString(const json &value, const std::string &where, std::string &out) {
  if (!value.is_string())
    return fail(where, std::string("expected a string, found ") + value.type_name());
  out = value.get<std::string>();
  return Status();
}

Status readInt(const json &value, const std::string &where, int64_t &out) {
  if (!value.is_number_integer() ||
      (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX)))
    return fail(where, std::string("expected a 64-bit integer, found ") +
                           (value.is_number() ? value.dump() : value.type_name()));
  out = value.get<int64_t>();
  return Status();
}

Status readNonNegative(const json &value, const std::string &where, int64_t &out) {
  MOEQ_RETURN_IF_ERROR(readInt(value, where, out));
  if (out < 0)
    return fail(where, "expected a non-negative integer, found " + std::to_string(out));
  return Status();
}

Status readStringMember(const json &object, const char *key, const std::string &where,
                        std::string &out) {
  const json *value = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(object, key, where, value));
  return readString(*value, member(where, key), out);
}

Status requireArray(const json &value, const std::string &where, long expectedSize = -1) {
  if (!value.is_array())
    return fail(where, std::string("expected an array, found ") + value.type_name());
  if (expectedSize >= 0 && value.size() != size_t(expectedSize))
    return fail(where, "expected " + std::to_string(expectedSize) + " elements, found " +
                           std::to_string(value.size()));
  return Status();
}

std::string keyList(const json &object) {
  std::string keys;
  for (auto it = object.begin(); it != object.end(); ++it)
    keys += (keys.empty() ? "" : ", ") + std::string("\"") + it.key() + "\"";
  return keys.empty() ? "none" : keys;
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

const std::pair<const char *, Expr::Kind> kOperations[] = {
    {"add", Expr::Kind::Add}, {"sub", Expr::Kind::Sub},         {"mul", Expr::Kind::Mul},
    {"div", Expr::Kind::Div}, {"ceildiv", Expr::Kind::CeilDiv}, {"min", Expr::Kind::Min},
    {"max", Expr::Kind::Max}};

Status parseExpr(const json &value, const std::string &where, const HostResolver &resolve,
                 int depth, Expr &out);

Status parseLoad(const json &value, const std::string &where, const HostResolver &resolve,
                 int depth, Expr &out) {
  std::string name;
  MOEQ_RETURN_IF_ERROR(readStringMember(value, "load", where, name));
  const json *index = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(value, "index", where, index));
  if (value.size() != 2)
    return fail(where, "a load has exactly \"load\" and \"index\", found " + keyList(value));
  int buffer = -1;
  MOEQ_RETURN_IF_ERROR(resolve(name, buffer).prefixed(where + ": "));
  Expr indexExpr;
  MOEQ_RETURN_IF_ERROR(parseExpr(*index, member(where, "index"), resolve, depth + 1, indexExpr));
  out = Expr::load(buffer, std::move(indexExpr));
  return Status();
}

Status parseOperation(const json &value, const std::string &where, const HostResolver &resolve,
                      int depth, Expr &out) {
  if (value.size() != 1)
    return fail(where, "unknown expression kind: an operation has one key, found " +
                           keyList(value));
  const auto only = value.begin();
  const std::string key = only.key();
  for (const auto &[name, kind] : kOperations) {
    if (key != name)
      continue;
    const json &operands = only.value();
    std::string operandsWhere = member(where, key);
    MOEQ_RETURN_IF_ERROR(requireArray(operands, operandsWhere, 2));
    Expr lhs, rhs;
    MOEQ_RETURN_IF_ERROR(parseExpr(operands[0], item(operandsWhere, 0), resolve, depth + 1, lhs));
    MOEQ_RETURN_IF_ERROR(parseExpr(operands[1], item(operandsWhere, 1), resolve, depth + 1, rhs));
    out = Expr::binary(kind, std::move(lhs), std::move(rhs));
    return Status();
  }
  return fail(where, "unknown expression kind \"" + key +
                         "\" (expected add, sub, mul, div, ceildiv, min, max or load)");
}

Status parseExpr(const json &value, const std::string &where, const HostResolver &resolve,
                 int depth, Expr &out) {
  if (depth > kMaxExpressionDepth)
    return fail(where, "expression nested deeper than " + std::to_string(kMaxExpressionDepth));
  if (value.is_number()) {
    int64_t constant = 0;
    MOEQ_RETURN_IF_ERROR(readInt(value, where, constant));
    out = Expr::constant(constant);
    return Status();
  }
  if (value.is_string()) {
    if (value.get<std::string>() != "T")
      return fail(where, "unknown expression \"" + value.get<std::string>() +
                             "\" (the only name is \"T\", the token count)");
    out = Expr::tokens();
    return Status();
  }
  if (value.is_object()) {
    if (findMember(value, "load"))
      return parseLoad(value, where, resolve, depth, out);
    return parseOperation(value, where, resolve, depth, out);
  }
  return fail(where, std::string("unknown expression kind: an expression is an integer, "
                                 "\"T\" or an object, found ") +
                         value.type_name());
}

//===----------------------------------------------------------------------===//
// device_params and kernels
//===----------------------------------------------------------------------===//

Status readDType(const json &object, const std::string &where, DType &dtype) {
  std::string name;
  MOEQ_RETURN_IF_ERROR(readStringMember(object, "dtype", where, name));
  if (!parseDType(name, dtype))
    return fail(member(where, "dtype"),
                "bad dtype \"" + name + "\" (expected f16, f32, i32, i8 or u64)");
  return Status();
}

Status readShape(const json &object, const std::string &where, std::vector<int64_t> &shape) {
  const json *value = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(object, "shape", where, value));
  std::string shapeWhere = member(where, "shape");
  MOEQ_RETURN_IF_ERROR(requireArray(*value, shapeWhere));
  shape.assign(value->size(), 0);
  for (size_t i = 0; i < value->size(); ++i)
    MOEQ_RETURN_IF_ERROR(readNonNegative((*value)[i], item(shapeWhere, i), shape[i]));
  return Status();
}

/// An address table: {"addresses": [[i, ...], ...], "dtype": "u64",
/// "shape": [rows, cols]}; the indices are checked once all are parsed.
Status parseAddressTable(const json &value, const std::string &where, DeviceParam &param) {
  if (param.dtype != DType::U64)
    return fail(member(where, "dtype"), "an address table is u64");
  MOEQ_RETURN_IF_ERROR(readShape(value, where, param.shape));
  const json &rows = *findMember(value, "addresses");
  std::string rowsWhere = member(where, "addresses");
  MOEQ_RETURN_IF_ERROR(requireArray(rows, rowsWhere));
  if (param.shape.size() != 2 || param.shape[0] != int64_t(rows.size()))
    return fail(member(where, "shape"), "an address table of " + std::to_string(rows.size()) +
                                            " rows has shape [" + std::to_string(rows.size()) +
                                            ", columns]");
  param.addresses.resize(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string rowWhere = item(rowsWhere, r);
    MOEQ_RETURN_IF_ERROR(requireArray(rows[r], rowWhere));
    if (int64_t(rows[r].size()) > param.shape[1])
      return fail(rowWhere, "more addresses than the table's " + std::to_string(param.shape[1]) +
                                " columns");
    param.addresses[r].resize(rows[r].size());
    for (size_t c = 0; c < rows[r].size(); ++c)
      MOEQ_RETURN_IF_ERROR(readNonNegative(rows[r][c], item(rowWhere, c), param.addresses[r][c]));
  }
  return Status();
}

Status parseDeviceParam(const json &value, const std::string &where, DeviceParam &param) {
  MOEQ_RETURN_IF_ERROR(requireObject(value, where));
  if (findMember(value, "addresses")) {
    MOEQ_RETURN_IF_ERROR(readDType(value, where, param.dtype));
    return parseAddressTable(value, where, param);
  }
  MOEQ_RETURN_IF_ERROR(readStringMember(value, "file", where, param.file));
  MOEQ_RETURN_IF_ERROR(readStringMember(value, "tensor", where, param.tensor));
  MOEQ_RETURN_IF_ERROR(readDType(value, where, param.dtype));
  if (param.dtype == DType::I8 || param.dtype == DType::U64)
    return fail(member(where, "dtype"), std::string("bad dtype \"") + dtypeName(param.dtype) +
                                            "\" for a device parameter (expected f16, f32 "
                                            "or i32)");
  MOEQ_RETURN_IF_ERROR(readShape(value, where, param.shape));
  if (const json *index = findMember(value, "index"))
    MOEQ_RETURN_IF_ERROR(readNonNegative(*index, member(where, "index"), param.index));
  if (const json *rows = findMember(value, "rows")) {
    std::string rowsWhere = member(where, "rows");
    MOEQ_RETURN_IF_ERROR(requireArray(*rows, rowsWhere, 2));
    MOEQ_RETURN_IF_ERROR(readNonNegative((*rows)[0], item(rowsWhere, 0), param.rowOffset));
    MOEQ_RETURN_IF_ERROR(readNonNegative((*rows)[1], item(rowsWhere, 1), param.rowCount));
    param.hasRows = true;
  }
  if (const json *transposed = findMember(value, "transposed")) {
    if (!transposed->is_boolean())
      return fail(member(where, "transposed"), "expected true or false");
    param.transposed = transposed->get<bool>();
  }
  if (const json *step = findMember(value, "step")) {
    MOEQ_RETURN_IF_ERROR(readNonNegative(*step, member(where, "step"), param.rowStep));
    if (param.rowStep < 1 || !param.hasRows)
      return fail(member(where, "step"), "a row step must be at least 1 and needs \"rows\"");
  }
  return Status();
}

/// An argument type: "ptr" / "i32", or (the version-1 spelling) an object
/// whose "type" is "i32" or a pointer type such as "f16*".
Status parseArgType(const json &value, const std::string &where, ArgType &type) {
  std::string name;
  if (value.is_object())
    MOEQ_RETURN_IF_ERROR(readStringMember(value, "type", where, name));
  else
    MOEQ_RETURN_IF_ERROR(readString(value, where, name));
  if (name == "i32") {
    type = ArgType::I32;
    return Status();
  }
  if (name == "ptr" || (!name.empty() && name.back() == '*')) {
    type = ArgType::Pointer;
    return Status();
  }
  return fail(where, "unknown argument type \"" + name + "\" (expected \"ptr\" or \"i32\")");
}

Status parseKernel(const json &value, const std::string &where, KernelInfo &kernel) {
  MOEQ_RETURN_IF_ERROR(requireObject(value, where));
  MOEQ_RETURN_IF_ERROR(readStringMember(value, "name", where, kernel.name));
  kernel.entry = kernel.name;
  if (findMember(value, "entry"))
    MOEQ_RETURN_IF_ERROR(readStringMember(value, "entry", where, kernel.entry));
  if (findMember(value, "ptx"))
    MOEQ_RETURN_IF_ERROR(readStringMember(value, "ptx", where, kernel.ptx));
  if (findMember(value, "emulation"))
    MOEQ_RETURN_IF_ERROR(readStringMember(value, "emulation", where, kernel.emulation));
  if (const json *shared = findMember(value, "shared_memory_bytes"))
    MOEQ_RETURN_IF_ERROR(
        readNonNegative(*shared, member(where, "shared_memory_bytes"), kernel.sharedMemoryBytes));
  const json *arguments = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(value, "arguments", where, arguments));
  std::string argumentsWhere = member(where, "arguments");
  MOEQ_RETURN_IF_ERROR(requireArray(*arguments, argumentsWhere));
  kernel.arguments.assign(arguments->size(), ArgType::Pointer);
  for (size_t i = 0; i < arguments->size(); ++i)
    MOEQ_RETURN_IF_ERROR(
        parseArgType((*arguments)[i], item(argumentsWhere, i), kernel.arguments[i]));
  return Status();
}

//===----------------------------------------------------------------------===//
// Layer plans
//===----------------------------------------------------------------------===//

/// What a plan's steps and arguments resolve against.
struct PlanScope {
  const Manifest &manifest;
  const std::map<std::string, int> &kernelIndex;
  LayerPlan &plan;
  std::map<std::string, int> bufferIndex;
  std::set<int> filledHostBuffers; ///< targets of the copies seen so far
};

Status findBuffer(const PlanScope &scope, const std::string &name, int &index) {
  auto it = scope.bufferIndex.find(name);
  if (it == scope.bufferIndex.end())
    return Status::error("unknown buffer '" + name + "'");
  index = it->second;
  return Status();
}

/// Loads read i32 host buffers that an earlier copy filled.
HostResolver loadResolver(const PlanScope &scope) {
  return [&scope](const std::string &name, int &index) -> Status {
    MOEQ_RETURN_IF_ERROR(findBuffer(scope, name, index).prefixed("load: "));
    const BufferDecl &buffer = scope.plan.buffers[index];
    if (!buffer.host)
      return Status::error("load from '" + name + "', which is not a host buffer");
    if (buffer.dtype != DType::I32)
      return Status::error("load from '" + name + "', which is " + dtypeName(buffer.dtype) +
                           " (expressions read i32 host buffers)");
    if (!scope.filledHostBuffers.count(index))
      return Status::error("load from '" + name + "' before a copy fills it");
    return Status();
  };
}

Status rejectLoads(const std::string &name, int &) {
  return Status::error("a buffer's shape depends on T only; it cannot load from '" + name + "'");
}

Status parseBuffer(const json &value, const std::string &where, BufferDecl &buffer) {
  MOEQ_RETURN_IF_ERROR(requireObject(value, where));
  MOEQ_RETURN_IF_ERROR(readStringMember(value, "name", where, buffer.name));
  if (buffer.name.empty())
    return fail(member(where, "name"), "empty buffer name");
  MOEQ_RETURN_IF_ERROR(readDType(value, where, buffer.dtype));
  const json *shape = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(value, "shape", where, shape));
  std::string shapeWhere = member(where, "shape");
  MOEQ_RETURN_IF_ERROR(requireArray(*shape, shapeWhere));
  buffer.shape.resize(shape->size());
  for (size_t i = 0; i < shape->size(); ++i)
    MOEQ_RETURN_IF_ERROR(
        parseExpr((*shape)[i], item(shapeWhere, i), rejectLoads, 0, buffer.shape[i]));
  if (const json *binding = findMember(value, "binding")) {
    std::string name;
    MOEQ_RETURN_IF_ERROR(readString(*binding, member(where, "binding"), name));
    if (name == "input")
      buffer.binding = BufferDecl::Binding::Input;
    else if (name == "output")
      buffer.binding = BufferDecl::Binding::Output;
    else
      return fail(member(where, "binding"),
                  "unknown binding \"" + name + "\" (expected \"input\" or \"output\")");
  }
  if (const json *host = findMember(value, "host")) {
    if (!host->is_boolean())
      return fail(member(where, "host"), std::string("expected true or false, found ") +
                                             host->type_name());
    buffer.host = host->get<bool>();
  }
  if (buffer.host && buffer.binding != BufferDecl::Binding::Scratch)
    return fail(where, "a bound buffer (the caller's x or y) is device memory, not \"host\"");
  return Status();
}

/// The caller's x and y are T x hidden f16: the bound buffers must say so.
Status checkBoundShape(const BufferDecl &buffer, const std::string &where, int64_t &hidden) {
  bool tokensByHidden = buffer.shape.size() == 2 &&
                        buffer.shape[0].kind == Expr::Kind::Tokens &&
                        buffer.shape[1].isConstant() && buffer.shape[1].value > 0;
  if (buffer.dtype != DType::F16 || !tokensByHidden)
    return fail(where, "the " +
                           std::string(buffer.binding == BufferDecl::Binding::Input ? "input"
                                                                                    : "output") +
                           " buffer '" + buffer.name +
                           "' must be f16 with shape [\"T\", hidden], the caller's tensor");
  hidden = buffer.shape[1].value;
  return Status();
}

Status parseBuffers(const json &plan, const std::string &where, PlanScope &scope) {
  const json *buffers = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(plan, "buffers", where, buffers));
  std::string buffersWhere = member(where, "buffers");
  MOEQ_RETURN_IF_ERROR(requireArray(*buffers, buffersWhere));
  LayerPlan &layer = scope.plan;
  layer.buffers.resize(buffers->size());
  for (size_t i = 0; i < buffers->size(); ++i) {
    std::string bufferWhere = item(buffersWhere, i);
    BufferDecl &buffer = layer.buffers[i];
    MOEQ_RETURN_IF_ERROR(parseBuffer((*buffers)[i], bufferWhere, buffer));
    if (!scope.bufferIndex.emplace(buffer.name, int(i)).second)
      return fail(bufferWhere, "a second buffer named '" + buffer.name + "'");
    layer.bufferNames.push_back(buffer.name);
    int *bound = buffer.binding == BufferDecl::Binding::Input    ? &layer.input
                 : buffer.binding == BufferDecl::Binding::Output ? &layer.output
                                                                 : nullptr;
    if (!bound)
      continue;
    if (*bound >= 0)
      return fail(bufferWhere, "a second buffer bound to the caller's " +
                                   std::string(bound == &layer.input ? "input" : "output") +
                                   " (the first is '" + layer.buffers[*bound].name + "')");
    *bound = int(i);
  }
  if (layer.input < 0 || layer.output < 0)
    return fail(buffersWhere, std::string("no buffer with \"binding\": \"") +
                                  (layer.input < 0 ? "input" : "output") + "\"");
  int64_t inputHidden = 0, outputHidden = 0;
  MOEQ_RETURN_IF_ERROR(
      checkBoundShape(layer.buffers[layer.input], item(buffersWhere, layer.input), inputHidden));
  MOEQ_RETURN_IF_ERROR(checkBoundShape(layer.buffers[layer.output],
                                       item(buffersWhere, layer.output), outputHidden));
  if (inputHidden != outputHidden)
    return fail(buffersWhere, "the input has " + std::to_string(inputHidden) +
                                  " columns and the output " + std::to_string(outputHidden));
  layer.hiddenSize = inputHidden;
  return Status();
}

Status parseArg(const json &value, const std::string &where, PlanScope &scope, ArgType expected,
                const KernelInfo &kernel, size_t position, Arg &arg) {
  MOEQ_RETURN_IF_ERROR(requireObject(value, where));
  auto typeMismatch = [&](const char *given) {
    return fail(where, std::string(given) + " for parameter " + std::to_string(position) +
                           " of kernel '" + kernel.name + "', which is " +
                           (expected == ArgType::I32 ? "an i32" : "a pointer"));
  };
  if (const json *buffer = findMember(value, "buffer")) {
    std::string name;
    MOEQ_RETURN_IF_ERROR(readString(*buffer, member(where, "buffer"), name));
    arg.kind = Arg::Kind::Buffer;
    MOEQ_RETURN_IF_ERROR(findBuffer(scope, name, arg.buffer).prefixed(where + ": "));
    if (scope.plan.buffers[arg.buffer].host)
      return fail(where, "host buffer '" + name + "' passed to a kernel");
    if (expected != ArgType::Pointer)
      return typeMismatch("a buffer");
    if (const json *offset = findMember(value, "offset"))
      MOEQ_RETURN_IF_ERROR(
          parseExpr(*offset, member(where, "offset"), loadResolver(scope), 0, arg.offset));
    return Status();
  }
  if (const json *param = findMember(value, "param")) {
    int64_t index = 0;
    MOEQ_RETURN_IF_ERROR(readNonNegative(*param, member(where, "param"), index));
    if (size_t(index) >= scope.manifest.deviceParams.size())
      return fail(where, "device_params[" + std::to_string(index) +
                             "] does not exist (the manifest has " +
                             std::to_string(scope.manifest.deviceParams.size()) + ")");
    arg.kind = Arg::Kind::Param;
    arg.param = int(index);
    if (expected != ArgType::Pointer)
      return typeMismatch("a device parameter");
    return Status();
  }
  if (const json *scalar = findMember(value, "i32")) {
    arg.kind = Arg::Kind::I32;
    MOEQ_RETURN_IF_ERROR(
        parseExpr(*scalar, member(where, "i32"), loadResolver(scope), 0, arg.value));
    if (expected != ArgType::I32)
      return typeMismatch("an i32");
    return Status();
  }
  return fail(where, "unknown argument kind (expected \"buffer\", \"param\" or \"i32\"; found " +
                         keyList(value) + ")");
}

Status parseDim3(const json &step, const char *key, const std::string &where, PlanScope &scope,
                 Expr (&dims)[3]) {
  const json *value = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(step, key, where, value));
  std::string dimsWhere = member(where, key);
  MOEQ_RETURN_IF_ERROR(requireArray(*value, dimsWhere, 3));
  for (size_t i = 0; i < 3; ++i)
    MOEQ_RETURN_IF_ERROR(parseExpr((*value)[i], item(dimsWhere, i), loadResolver(scope), 0, dims[i]));
  return Status();
}

Status parseLaunch(const json &value, const std::string &where, PlanScope &scope, Step &step) {
  step.kind = Step::Kind::Launch;
  std::string kernelName;
  MOEQ_RETURN_IF_ERROR(readStringMember(value, "launch", where, kernelName));
  auto kernel = scope.kernelIndex.find(kernelName);
  if (kernel == scope.kernelIndex.end())
    return fail(where, "launches unknown kernel '" + kernelName + "' (not in \"kernels\")");
  step.kernel = kernel->second;
  const KernelInfo &info = scope.manifest.kernels[step.kernel];
  MOEQ_RETURN_IF_ERROR(parseDim3(value, "grid", where, scope, step.grid));
  MOEQ_RETURN_IF_ERROR(parseDim3(value, "block", where, scope, step.block));
  step.sharedMemoryBytes = Expr::constant(info.sharedMemoryBytes);
  if (const json *shared = findMember(value, "shared_memory_bytes"))
    MOEQ_RETURN_IF_ERROR(parseExpr(*shared, member(where, "shared_memory_bytes"),
                                   loadResolver(scope), 0, step.sharedMemoryBytes));
  const json *args = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(value, "args", where, args));
  std::string argsWhere = member(where, "args");
  MOEQ_RETURN_IF_ERROR(requireArray(*args, argsWhere));
  if (args->size() != info.arguments.size())
    return fail(argsWhere, std::to_string(args->size()) + " arguments for kernel '" + info.name +
                               "', which takes " + std::to_string(info.arguments.size()));
  step.args.resize(args->size());
  for (size_t i = 0; i < args->size(); ++i)
    MOEQ_RETURN_IF_ERROR(parseArg((*args)[i], item(argsWhere, i), scope, info.arguments[i], info,
                                  i, step.args[i]));
  return Status();
}

Status parseCopy(const json &value, const std::string &where, PlanScope &scope, Step &step) {
  step.kind = Step::Kind::Copy;
  std::string from, to;
  MOEQ_RETURN_IF_ERROR(readStringMember(value, "copy", where, from));
  MOEQ_RETURN_IF_ERROR(readStringMember(value, "to", where, to));
  MOEQ_RETURN_IF_ERROR(findBuffer(scope, from, step.from).prefixed(where + ": "));
  MOEQ_RETURN_IF_ERROR(findBuffer(scope, to, step.to).prefixed(where + ": "));
  const std::vector<BufferDecl> &buffers = scope.plan.buffers;
  if (buffers[step.from].host)
    return fail(where, "copies from '" + from + "', a host buffer (copies go device -> host)");
  if (!buffers[step.to].host)
    return fail(where, "copies to '" + to + "', which is not a host buffer");
  if (buffers[step.to].binding != BufferDecl::Binding::Scratch)
    return fail(where, "copies to the caller's buffer '" + to + "'");
  scope.filledHostBuffers.insert(step.to);
  return Status();
}

Status parseStep(const json &value, const std::string &where, PlanScope &scope, Step &step) {
  MOEQ_RETURN_IF_ERROR(requireObject(value, where));
  if (findMember(value, "launch"))
    return parseLaunch(value, where, scope, step);
  if (findMember(value, "copy"))
    return parseCopy(value, where, scope, step);
  return fail(where, "unknown step kind (a step has \"launch\" or \"copy\"; this one has " +
                         keyList(value) + ")");
}

Status parseLayer(const json &value, const std::string &where, const Manifest &manifest,
                  const std::map<std::string, int> &kernelIndex, LayerPlan &layer) {
  MOEQ_RETURN_IF_ERROR(requireObject(value, where));
  const json *index = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(value, "layer", where, index));
  MOEQ_RETURN_IF_ERROR(readNonNegative(*index, member(where, "layer"), layer.layer));
  const json *plan = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(value, "plan", where, plan));
  std::string planWhere = member(where, "plan");
  MOEQ_RETURN_IF_ERROR(requireObject(*plan, planWhere));
  if (findMember(*plan, "function"))
    MOEQ_RETURN_IF_ERROR(readStringMember(*plan, "function", planWhere, layer.function));
  PlanScope scope{manifest, kernelIndex, layer, {}, {}};
  MOEQ_RETURN_IF_ERROR(parseBuffers(*plan, planWhere, scope));
  if (const json *hidden = findMember(value, "hidden_size")) {
    int64_t declared = 0;
    MOEQ_RETURN_IF_ERROR(readNonNegative(*hidden, member(where, "hidden_size"), declared));
    if (declared != layer.hiddenSize)
      return fail(where, "hidden_size " + std::to_string(declared) +
                             " but the plan's input has " + std::to_string(layer.hiddenSize) +
                             " columns");
  }
  const json *steps = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(*plan, "steps", planWhere, steps));
  std::string stepsWhere = member(planWhere, "steps");
  MOEQ_RETURN_IF_ERROR(requireArray(*steps, stepsWhere));
  layer.steps.resize(steps->size());
  for (size_t i = 0; i < steps->size(); ++i)
    MOEQ_RETURN_IF_ERROR(parseStep((*steps)[i], item(stepsWhere, i), scope, layer.steps[i]));
  return Status();
}

//===----------------------------------------------------------------------===//
// Top level
//===----------------------------------------------------------------------===//

Status checkFormatAndVersion(const json &root) {
  const json *format = findMember(root, "format");
  if (!format || !format->is_string() || format->get<std::string>() != "moeq-artifact")
    return Status::error("not a moeq artifact (expected \"format\": \"moeq-artifact\")");
  const json *version = findMember(root, "version");
  if (!version)
    return fail("", "missing \"version\"");
  int64_t number = 0;
  MOEQ_RETURN_IF_ERROR(readInt(*version, "version", number));
  if (number != kManifestVersion)
    return Status::error("manifest version " + std::to_string(number) +
                         ", this runtime reads version " + std::to_string(kManifestVersion) +
                         ": recompile the model with this moeq");
  return Status();
}

Status parseDeviceParams(const json &root, Manifest &manifest) {
  const json *params = findMember(root, "device_params");
  if (!params)
    return Status();
  MOEQ_RETURN_IF_ERROR(requireArray(*params, "device_params"));
  manifest.deviceParams.resize(params->size());
  for (size_t i = 0; i < params->size(); ++i)
    MOEQ_RETURN_IF_ERROR(
        parseDeviceParam((*params)[i], item("device_params", i), manifest.deviceParams[i]));
  // An address table lists tensors (not other tables) that exist.
  for (size_t i = 0; i < manifest.deviceParams.size(); ++i)
    for (const std::vector<int64_t> &row : manifest.deviceParams[i].addresses)
      for (int64_t entry : row)
        if (entry >= int64_t(manifest.deviceParams.size()) ||
            !manifest.deviceParams[entry].addresses.empty())
          return fail(member(item("device_params", i), "addresses"),
                      "entry " + std::to_string(entry) + " is not a device tensor");
  return Status();
}

Status parseKernels(const json &root, Manifest &manifest, std::map<std::string, int> &index) {
  const json *kernels = findMember(root, "kernels");
  if (!kernels)
    return Status();
  MOEQ_RETURN_IF_ERROR(requireArray(*kernels, "kernels"));
  manifest.kernels.resize(kernels->size());
  for (size_t i = 0; i < kernels->size(); ++i) {
    std::string where = item("kernels", i);
    MOEQ_RETURN_IF_ERROR(parseKernel((*kernels)[i], where, manifest.kernels[i]));
    if (!index.emplace(manifest.kernels[i].name, int(i)).second)
      return fail(where, "a second kernel named '" + manifest.kernels[i].name + "'");
  }
  return Status();
}

Status parseLayers(const json &root, Manifest &manifest,
                   const std::map<std::string, int> &kernelIndex) {
  const json *layers = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(root, "layers", "", layers));
  MOEQ_RETURN_IF_ERROR(requireArray(*layers, "layers"));
  if (layers->empty())
    return fail("layers", "no MoE layers");
  manifest.layers.resize(layers->size());
  std::set<int64_t> seen;
  for (size_t i = 0; i < layers->size(); ++i) {
    std::string where = item("layers", i);
    LayerPlan &layer = manifest.layers[i];
    MOEQ_RETURN_IF_ERROR(parseLayer((*layers)[i], where, manifest, kernelIndex, layer));
    if (!seen.insert(layer.layer).second)
      return fail(where, "a second entry for layer " + std::to_string(layer.layer));
    if (layer.hiddenSize != manifest.layers[0].hiddenSize)
      return fail(where, "hidden size " + std::to_string(layer.hiddenSize) + ", layers[0] has " +
                             std::to_string(manifest.layers[0].hiddenSize));
  }
  manifest.hiddenSize = manifest.layers[0].hiddenSize;
  return Status();
}

/// `files`: relative path -> {"bytes": N, "xxh3_128": "<32 hex digits>"}.
Status parseFiles(const json &root, Manifest &manifest) {
  const json *files = nullptr;
  MOEQ_RETURN_IF_ERROR(requireMember(root, "files", "", files));
  MOEQ_RETURN_IF_ERROR(requireObject(*files, "files"));
  for (const auto &[relative, value] : files->items()) {
    std::string where = "files[\"" + relative + "\"]";
    if (!isArtifactRelativePath(relative))
      return fail(where, "not a path inside the artifact");
    MOEQ_RETURN_IF_ERROR(requireObject(value, where));
    FileDigest &digest = manifest.files[relative];
    const json *bytes = nullptr;
    MOEQ_RETURN_IF_ERROR(requireMember(value, "bytes", where, bytes));
    int64_t size = 0;
    MOEQ_RETURN_IF_ERROR(readNonNegative(*bytes, member(where, "bytes"), size));
    digest.bytes = uint64_t(size);
    MOEQ_RETURN_IF_ERROR(readStringMember(value, kDigestName, where, digest.xxh3));
    if (digest.xxh3.size() != 32 ||
        digest.xxh3.find_first_not_of("0123456789abcdef") != std::string::npos)
      return fail(member(where, kDigestName), "expected 32 lower-case hex digits");
  }
  return Status();
}

/// Every weight and kernel file the manifest names is listed in `files`.
Status checkFilesListed(const Manifest &manifest) {
  auto listed = [&](const std::string &relative, const std::string &where) {
    if (relative.empty() || manifest.files.count(relative))
      return Status();
    return fail(where, "'" + relative + "' is not listed in \"files\"");
  };
  for (size_t i = 0; i < manifest.deviceParams.size(); ++i)
    if (manifest.deviceParams[i].addresses.empty())
      MOEQ_RETURN_IF_ERROR(
          listed(manifest.deviceParams[i].file, member(item("device_params", i), "file")));
  for (size_t k = 0; k < manifest.kernels.size(); ++k) {
    MOEQ_RETURN_IF_ERROR(listed(manifest.kernels[k].ptx, member(item("kernels", k), "ptx")));
    MOEQ_RETURN_IF_ERROR(
        listed(manifest.kernels[k].emulation, member(item("kernels", k), "emulation")));
  }
  return Status();
}

Status parseManifestJson(const json &root, Manifest &manifest) {
  if (!root.is_object())
    return Status::error("not a moeq artifact (the manifest is not a JSON object)");
  MOEQ_RETURN_IF_ERROR(checkFormatAndVersion(root));
  MOEQ_RETURN_IF_ERROR(parseFiles(root, manifest));
  MOEQ_RETURN_IF_ERROR(parseDeviceParams(root, manifest));
  std::map<std::string, int> kernelIndex;
  MOEQ_RETURN_IF_ERROR(parseKernels(root, manifest, kernelIndex));
  MOEQ_RETURN_IF_ERROR(parseLayers(root, manifest, kernelIndex));
  MOEQ_RETURN_IF_ERROR(checkFilesListed(manifest));
  if (const json *model = findMember(root, "model"))
    if (const json *hidden = findMember(*model, "hidden_size")) {
      int64_t declared = 0;
      MOEQ_RETURN_IF_ERROR(readInt(*hidden, "model.hidden_size", declared));
      if (declared != manifest.hiddenSize)
        return fail("model.hidden_size", std::to_string(declared) + ", but the layers' plans have " +
                                             std::to_string(manifest.hiddenSize) + " columns");
    }
  return Status();
}

bool isRegularFile(const std::string &path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

Status checkKernelFiles(const Manifest &manifest, KernelFile kernelFile) {
  if (kernelFile == KernelFile::None)
    return Status();
  for (size_t k = 0; k < manifest.kernels.size(); ++k) {
    if (!manifest.kernelIsLaunched(k))
      continue;
    const KernelInfo &kernel = manifest.kernels[k];
    bool ptx = kernelFile == KernelFile::Ptx;
    const std::string &relative = ptx ? kernel.ptx : kernel.emulation;
    if (relative.empty())
      return Status::error(manifest.path + ": kernels[" + std::to_string(k) + "] ('" +
                           kernel.name + "') has no \"" + (ptx ? "ptx" : "emulation") +
                           "\" file, which the " + (ptx ? "cuda" : "emulator") +
                           " backend needs");
    std::string path = joinPath(manifest.directory, relative);
    if (!isRegularFile(path))
      return Status::error("missing kernel file " + path + " (kernel '" + kernel.name + "')");
    if (manifest.checkDigests)
      MOEQ_RETURN_IF_ERROR(checkFileDigest(manifest.directory, relative, manifest.files)
                               .prefixed("kernel '" + kernel.name + "': "));
  }
  return Status();
}

} // namespace

//===----------------------------------------------------------------------===//
// Public functions
//===----------------------------------------------------------------------===//

size_t moeq::runtime::dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F16: return 2;
  case DType::F32: return 4;
  case DType::I32: return 4;
  case DType::I8: return 1;
  case DType::U64: return 8;
  }
  return 0;
}

const char *moeq::runtime::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F16: return "f16";
  case DType::F32: return "f32";
  case DType::I32: return "i32";
  case DType::I8: return "i8";
  case DType::U64: return "u64";
  }
  return "?";
}

bool moeq::runtime::parseDType(const std::string &name, DType &dtype) {
  for (DType candidate : {DType::F16, DType::F32, DType::I32, DType::I8, DType::U64})
    if (name == dtypeName(candidate)) {
      dtype = candidate;
      return true;
    }
  return false;
}

const LayerPlan *Manifest::findLayer(int64_t layer) const {
  for (const LayerPlan &plan : layers)
    if (plan.layer == layer)
      return &plan;
  return nullptr;
}

std::string Manifest::layerList() const {
  std::string list;
  for (const LayerPlan &plan : layers)
    list += (list.empty() ? "" : ", ") + std::to_string(plan.layer);
  return list;
}

bool Manifest::kernelIsLaunched(size_t k) const {
  for (const LayerPlan &plan : layers)
    for (const Step &step : plan.steps)
      if (step.kind == Step::Kind::Launch && step.kernel == int(k))
        return true;
  return false;
}

std::string moeq::runtime::joinPath(const std::string &directory, const std::string &relative) {
  if (relative.empty() || relative[0] == '/' || directory.empty())
    return relative;
  return directory.back() == '/' ? directory + relative : directory + "/" + relative;
}

Status moeq::runtime::parseManifest(const std::string &text, const std::string &path,
                                    const std::string &directory, Manifest &manifest) {
  manifest = Manifest();
  manifest.path = path;
  manifest.directory = directory;
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception &error) {
    return Status::error(path + ": not a moeq artifact (invalid JSON: " + error.what() + ")");
  }
  return parseManifestJson(root, manifest).prefixed(path + ": ");
}

Status moeq::runtime::loadManifest(const std::string &directory, KernelFile kernelFile,
                                   Manifest &manifest, DigestCheck digests) {
  std::string path = joinPath(directory, "manifest.json");
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return Status::error(directory + ": not a moeq artifact (cannot read " + path + ")");
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad())
    return Status::error(path + ": read error");
  MOEQ_RETURN_IF_ERROR(parseManifest(text.str(), path, directory, manifest));
  manifest.checkDigests = digests == DigestCheck::Check;
  return checkKernelFiles(manifest, kernelFile);
}

Status moeq::runtime::parseExpression(
    const std::string &text,
    const std::function<Status(const std::string &, int &)> &resolveHostBuffer, Expr &expr) {
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception &error) {
    return Status::error(std::string("invalid JSON: ") + error.what());
  }
  return parseExpr(value, "expression", resolveHostBuffer, 0, expr);
}
