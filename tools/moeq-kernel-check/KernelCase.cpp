//===- KernelCase.cpp - kernel launches recorded for replay on a GPU ------===//
#include "KernelCase.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>

using namespace mlir::moeq;
using namespace mlir::moeq::kcase;

size_t kcase::byteSize(io::DType dtype, llvm::ArrayRef<int64_t> shape) {
  size_t count = 1;
  for (int64_t d : shape)
    count *= size_t(d);
  return count * io::dtypeSize(dtype);
}

static llvm::StringRef compareName(Compare compare) {
  switch (compare) {
  case Compare::Bitwise: return "bitwise";
  case Compare::Ulp: return "ulp";
  case Compare::Written: return "written";
  }
  return "";
}

static llvm::StringRef poisonName(Poison poison) {
  switch (poison) {
  case Poison::F16NaN: return "f16nan";
  case Poison::F32NaN: return "f32nan";
  case Poison::Ones: return "ones";
  }
  return "";
}

static llvm::json::Array shapeJson(llvm::ArrayRef<int64_t> shape) {
  llvm::json::Array out;
  for (int64_t d : shape)
    out.push_back(d);
  return out;
}

Run::Buffer *Run::find(llvm::StringRef buffer) {
  for (Buffer &b : buffers)
    if (b.name == buffer)
      return &b;
  return nullptr;
}

void Run::input(llvm::StringRef buffer, io::DType dtype, llvm::ArrayRef<int64_t> shape,
                const void *data) {
  Buffer &b = buffers.emplace_back();
  b.name = buffer.str();
  b.tensor = name + "." + b.name;
  b.dtype = dtype;
  b.shape.assign(shape.begin(), shape.end());
  b.data = const_cast<void *>(data);
  auto *bytes = static_cast<const uint8_t *>(data);
  tensors[b.tensor].assign(bytes, bytes + byteSize(dtype, shape));
  pendingTensors[b.tensor] = {dtype, b.shape};
}

void Run::sharedInput(llvm::StringRef buffer, llvm::StringRef tensor, const void *data) {
  Buffer &b = buffers.emplace_back();
  b.name = buffer.str();
  b.tensor = tensor.str();
  b.data = const_cast<void *>(data);
}

void Run::output(llvm::StringRef buffer, io::DType dtype, llvm::ArrayRef<int64_t> shape,
                 void *data, int64_t rows, Compare compare, Poison poison) {
  Buffer &b = buffers.emplace_back();
  b.name = buffer.str();
  b.dtype = dtype;
  b.shape.assign(shape.begin(), shape.end());
  b.data = data;
  b.isOutput = true;
  b.rows = rows;
  b.compare = compare;
  b.poison = poison;
}

void Run::reference(llvm::StringRef buffer, std::vector<double> values,
                    llvm::ArrayRef<int64_t> shape) {
  Buffer *b = find(buffer);
  if (!b)
    return;
  b->reference = name + "." + b->name + ".ref";
  auto *bytes = reinterpret_cast<const uint8_t *>(values.data());
  tensors[b->reference].assign(bytes, bytes + values.size() * sizeof(double));
  pendingTensors[b->reference] = {io::DType::F64, {shape.begin(), shape.end()}};
}

llvm::Error Run::launch(llvm::StringRef kernelName, emu::PackedKernel kernel,
                        const emu::LaunchConfig &config, llvm::ArrayRef<Arg> args) {
  std::vector<void *> argv;
  llvm::json::Array argJson;
  for (const Arg &arg : args) {
    if (arg.columns > 0) {
      std::vector<uint64_t> &table = tables.emplace_back(arg.table.size() * arg.columns, 0);
      llvm::json::Array rows;
      for (auto [r, names] : llvm::enumerate(arg.table)) {
        llvm::json::Array row;
        for (auto [c, name] : llvm::enumerate(names)) {
          Buffer *b = find(name);
          if (!b)
            return llvm::createStringError("launch of " + kernelName + ": no buffer " + name);
          table[r * arg.columns + c] = reinterpret_cast<uint64_t>(b->data);
          row.push_back(name);
        }
        rows.push_back(std::move(row));
      }
      pointers.push_back(table.data());
      argv.push_back(&pointers.back());
      argJson.push_back(
          llvm::json::Object{{"address_table", std::move(rows)}, {"columns", arg.columns}});
      continue;
    }
    if (arg.buffer.empty()) {
      scalars.push_back(arg.value);
      argv.push_back(&scalars.back());
      argJson.push_back(llvm::json::Object{{"i32", arg.value}});
      continue;
    }
    Buffer *b = find(arg.buffer);
    if (!b)
      return llvm::createStringError("launch of " + kernelName + ": no buffer " + arg.buffer);
    pointers.push_back(b->data);
    argv.push_back(&pointers.back());
    argJson.push_back(llvm::json::Object{{"buffer", b->name}});
  }
  if (kernel)
    if (llvm::Error error = emu::launch(kernel, argv, config))
      return llvm::createStringError(kernelName + ": " + llvm::toString(std::move(error)));
  launches.push_back(llvm::json::Object{
      {"kernel", kernelName.str()},
      {"grid", llvm::json::Array{config.grid.x, config.grid.y, config.grid.z}},
      {"block", llvm::json::Array{config.block.x, config.block.y, config.block.z}},
      {"shared_bytes", int64_t(config.sharedBytes)},
      {"args", std::move(argJson)}});
  return llvm::Error::success();
}

void Run::finish() {
  for (Buffer &b : buffers) {
    if (!b.isOutput)
      continue;
    std::string expected = name + "." + b.name + ".emu";
    auto *bytes = static_cast<const uint8_t *>(b.data);
    tensors[expected].assign(bytes, bytes + byteSize(b.dtype, b.shape));
    pendingTensors[expected] = {b.dtype, b.shape};
  }
}

void Case::addTensor(llvm::StringRef name, io::DType dtype, llvm::ArrayRef<int64_t> shape,
                     const void *data) {
  auto *bytes = static_cast<const uint8_t *>(data);
  llvm::consumeError(shared.addTensor(
      name, dtype, shape,
      llvm::ArrayRef<uint8_t>(bytes, byteSize(dtype, shape))));
}

llvm::Error Case::write(llvm::StringRef dir) {
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return llvm::createStringError(ec, "cannot create " + dir);
  auto writeText = [&](llvm::StringRef file, llvm::StringRef text) -> llvm::Error {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, file);
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    if (ec)
      return llvm::createStringError(ec, "cannot write " + path);
    os << text;
    return llvm::Error::success();
  };
  llvm::json::Object kernels;
  for (auto &[kernel, ptx] : ptxOf) {
    std::string file = kernel + ".ptx";
    if (llvm::Error error = writeText(file, ptx))
      return error;
    kernels[kernel] = file;
  }
  llvm::json::Array runsJson;
  for (Run &run : runs) {
    llvm::json::Array buffersJson;
    for (Run::Buffer &b : run.buffers) {
      llvm::json::Object o{{"name", b.name}};
      if (!b.isOutput) {
        o["tensor"] = b.tensor;
        buffersJson.push_back(std::move(o));
        continue;
      }
      std::string expected = run.name + "." + b.name + ".emu";
      if (!run.tensors.count(expected))
        return llvm::createStringError("run " + run.name + " was not finished");
      o["dtype"] = io::dtypeName(b.dtype).lower();
      o["shape"] = shapeJson(b.shape);
      o["rows"] = b.rows;
      o["compare"] = compareName(b.compare);
      o["poison"] = poisonName(b.poison);
      o["expected"] = expected;
      if (!b.reference.empty())
        o["reference"] = b.reference;
      buffersJson.push_back(std::move(o));
    }
    for (auto &[tensor, bytes] : run.tensors) {
      auto &[dtype, shape] = run.pendingTensors[tensor];
      if (llvm::Error error = shared.addTensor(tensor, dtype, shape, std::move(bytes)))
        return error;
    }
    runsJson.push_back(llvm::json::Object{{"name", run.name},
                                          {"buffers", std::move(buffersJson)},
                                          {"launches", std::move(run.launches)}});
  }
  llvm::json::Object root{{"format", "moeq-kernel-case/1"},
                          {"kind", kind},
                          {"description", description},
                          {"arch", arch},
                          {"kernels", std::move(kernels)},
                          {"data", "data.safetensors"},
                          {"runs", std::move(runsJson)}};
  for (auto &[key, value] : extra)
    root[key] = value;
  llvm::SmallString<256> dataPath(dir);
  llvm::sys::path::append(dataPath, "data.safetensors");
  if (llvm::Error error = shared.writeAtomically(dataPath))
    return error;
  return writeText("case.json",
                   llvm::formatv("{0:2}", llvm::json::Value(std::move(root))).str() + "\n");
}
