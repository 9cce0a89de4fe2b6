//===- Artifact.cpp - open an artifact, interpret its launch plans --------===//
#include "moeq/Runtime/Artifact.h"
#include "moeq/Runtime/MemoryLimit.h"

#include <cstring>
#include <limits>

using namespace moeq::runtime;

namespace {

// Messages are built only on failure: a warm call allocates nothing.

/// Scratch buffers start at multiples of these (the CUDA allocator's own
/// alignment on the device; a cache line on the host).
constexpr size_t kDeviceAlignment = 256;
constexpr size_t kHostAlignment = 64;

size_t alignUp(size_t value, size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

std::string stepPlace(const LayerPlan &layer, size_t index, const Manifest &manifest) {
  const Step &step = layer.steps[index];
  std::string what = step.kind == Step::Kind::Launch
                         ? "launch of '" + manifest.kernels[step.kernel].name + "'"
                         : "copy of '" + layer.bufferNames[step.from] + "'";
  return "layer " + std::to_string(layer.layer) + " step " + std::to_string(index) + " (" +
         what + "): ";
}

Status evaluateDim(const Expr &expr, const EvalContext &context, const char *what, int i,
                   int64_t &value) {
  Status status = evaluate(expr, context, value);
  if (!status.ok())
    return status.prefixed(std::string(what) + "[" + std::to_string(i) + "]: ");
  if (value < 0 || value > int64_t(std::numeric_limits<uint32_t>::max()))
    return Status::error(std::string(what) + "[" + std::to_string(i) + "] is " +
                         std::to_string(value));
  return Status();
}

} // namespace

//===----------------------------------------------------------------------===//
// Opening
//===----------------------------------------------------------------------===//

Status Artifact::open(const std::string &directory, Backend backendKind, int ordinal,
                      std::unique_ptr<Artifact> &artifact) {
  Manifest manifest;
  MOEQ_RETURN_IF_ERROR(loadManifest(directory, kernelFileOf(backendKind), manifest));
  DeviceParamSources params;
  MOEQ_RETURN_IF_ERROR(params.open(manifest));
  std::unique_ptr<Device> device;
  MOEQ_RETURN_IF_ERROR(createDevice(backendKind, ordinal, device));
  return create(std::move(manifest), params, std::move(device), artifact);
}

Status Artifact::create(Manifest manifest, const DeviceParamSources &params,
                        std::unique_ptr<Device> device, std::unique_ptr<Artifact> &artifact) {
  std::unique_ptr<Artifact> result(new Artifact());
  result->backend = std::move(device);
  result->plan = std::move(manifest);
  MOEQ_RETURN_IF_ERROR(result->uploadAndLoad(params));
  artifact = std::move(result);
  return Status();
}

Status Artifact::uploadAndLoad(const DeviceParamSources &params) {
  MOEQ_RETURN_IF_ERROR(params.upload(*backend, paramAddresses));
  kernelHandles.assign(plan.kernels.size(), -1);
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    if (!plan.kernelIsLaunched(k))
      continue;
    const KernelInfo &kernel = plan.kernels[k];
    MOEQ_RETURN_IF_ERROR(backend->loadKernel(kernel, plan.directory, kernelHandles[k])
                             .prefixed(plan.path + ": kernel '" + kernel.name + "': "));
  }
  return Status();
}

Artifact::~Artifact() {
  if (!backend)
    return;
  for (DeviceAddress address : paramAddresses)
    backend->release(address);
  backend->release(deviceArena.address);
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

Status Artifact::layoutBuffers(const LayerPlan &layer, int64_t tokens, void *stream) {
  size_t count = layer.buffers.size();
  bufferBytes.assign(count, 0);
  bufferOffsets.assign(count, 0);
  bufferElements.assign(count, 0);
  EvalContext context{tokens, nullptr, &layer.bufferNames};
  size_t deviceBytes = 0, hostBytes = 0;
  for (size_t i = 0; i < count; ++i) {
    const BufferDecl &buffer = layer.buffers[i];
    auto place = [&] {
      return "layer " + std::to_string(layer.layer) + " buffer '" + buffer.name + "': ";
    };
    int64_t elements = 1;
    for (size_t d = 0; d < buffer.shape.size(); ++d) {
      int64_t dim = 0;
      Status status = evaluate(buffer.shape[d], context, dim);
      if (!status.ok())
        return status.prefixed(place());
      if (dim < 0)
        return Status::error(place() + "dimension " + std::to_string(d) + " is " +
                             std::to_string(dim));
      if (__builtin_mul_overflow(elements, dim, &elements))
        return Status::error(place() + "size overflows");
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(uint64_t(elements), uint64_t(dtypeSize(buffer.dtype)), &bytes) ||
        bytes > (uint64_t(1) << 48))
      return Status::error(place() + "size overflows");
    bufferElements[i] = elements;
    bufferBytes[i] = size_t(bytes);
    if (buffer.binding != BufferDecl::Binding::Scratch)
      continue;
    size_t &end = buffer.host ? hostBytes : deviceBytes;
    end = alignUp(end, buffer.host ? kHostAlignment : kDeviceAlignment);
    bufferOffsets[i] = end;
    end += bufferBytes[i];
  }
  return reserveArena(deviceBytes, hostBytes, stream);
}

Status Artifact::reserveArena(size_t deviceBytes, size_t hostBytes, void *stream) {
  if (deviceBytes > deviceArena.bytes) {
    // Grow by at least half again, so that slowly growing T does not
    // reallocate on every call. Queued work of earlier calls (on this
    // stream: calls on other streams are the caller's to order) may still
    // use the old arena: wait for it before freeing.
    size_t grown = std::max(deviceBytes, deviceArena.bytes + deviceArena.bytes / 2);
    if (deviceArena.address)
      MOEQ_RETURN_IF_ERROR(backend->synchronize(stream));
    backend->release(deviceArena.address);
    deviceArena = DeviceArena();
    DeviceAddress address = 0;
    MOEQ_RETURN_IF_ERROR(backend->allocate(grown, address)
                             .prefixed("allocating " + std::to_string(grown) +
                                       " bytes of scratch memory: "));
    deviceArena = {address, grown};
  }
  size_t hostWords = (hostBytes + kHostAlignment) / sizeof(uint64_t);
  if (hostWords > hostArena.size()) {
    std::string tooLarge =
        checkAllocationSize(hostWords * sizeof(uint64_t), "the plan's host buffers");
    if (!tooLarge.empty())
      return Status::error(tooLarge);
    hostArena.resize(hostWords);
  }
  return Status();
}

Status Artifact::runLayer(int64_t layerIndex, DeviceAddress x, DeviceAddress y, int64_t tokens,
                          void *stream, std::vector<LaunchRecord> *launches) {
  const LayerPlan *layer = plan.findLayer(layerIndex);
  if (!layer)
    return Status::error("layer " + std::to_string(layerIndex) + " is not a MoE layer of " +
                         plan.directory + " (MoE layers: " + plan.layerList() + ")");
  if (tokens < 0)
    return Status::error("negative token count " + std::to_string(tokens));
  if (tokens == 0)
    return Status();
  MOEQ_RETURN_IF_ERROR(layoutBuffers(*layer, tokens, stream));

  // Bind every buffer to its memory: the caller's x and y, the arenas.
  size_t count = layer->buffers.size();
  bufferAddresses.assign(count, 0);
  hostViews.assign(count, HostBufferView());
  uintptr_t hostBase = alignUp(reinterpret_cast<uintptr_t>(hostArena.data()), kHostAlignment);
  for (size_t i = 0; i < count; ++i) {
    const BufferDecl &buffer = layer->buffers[i];
    if (buffer.binding == BufferDecl::Binding::Input)
      bufferAddresses[i] = x;
    else if (buffer.binding == BufferDecl::Binding::Output)
      bufferAddresses[i] = y;
    else if (buffer.host)
      bufferAddresses[i] = hostBase + bufferOffsets[i];
    else
      bufferAddresses[i] = deviceArena.address + bufferOffsets[i];
    if (buffer.host && buffer.dtype == DType::I32)
      hostViews[i] = {reinterpret_cast<const int32_t *>(bufferAddresses[i]), bufferElements[i]};
  }

  EvalContext context{tokens, &hostViews, &layer->bufferNames};
  for (size_t s = 0; s < layer->steps.size(); ++s) {
    const Step &step = layer->steps[s];
    Status status = step.kind == Step::Kind::Launch
                        ? executeLaunch(*layer, s, context, stream, launches)
                        : executeCopy(*layer, step, stream);
    if (!status.ok())
      return status.prefixed(stepPlace(*layer, s, plan));
  }
  return Status();
}

Status Artifact::executeLaunch(const LayerPlan &layer, size_t index, const EvalContext &context,
                               void *stream, std::vector<LaunchRecord> *launches) {
  const Step &step = layer.steps[index];
  int64_t grid[3], block[3], shared = 0;
  for (int i = 0; i < 3; ++i) {
    MOEQ_RETURN_IF_ERROR(evaluateDim(step.grid[i], context, "grid", i, grid[i]));
    MOEQ_RETURN_IF_ERROR(evaluateDim(step.block[i], context, "block", i, block[i]));
  }
  // An empty grid (no rows for this kernel in this call) launches nothing.
  if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0)
    return Status();
  for (int i = 0; i < 3; ++i)
    if (block[i] == 0)
      return Status::error("block[" + std::to_string(i) + "] is 0");
  Status status = evaluate(step.sharedMemoryBytes, context, shared);
  if (!status.ok())
    return status.prefixed("shared_memory_bytes: ");
  if (shared < 0 || shared > int64_t(std::numeric_limits<uint32_t>::max()))
    return Status::error("shared_memory_bytes is " + std::to_string(shared));

  size_t numArgs = step.args.size();
  argSlots.assign(numArgs, 0);
  argPointers.assign(numArgs, nullptr);
  for (size_t a = 0; a < numArgs; ++a) {
    const Arg &arg = step.args[a];
    auto place = [a] { return "args[" + std::to_string(a) + "]: "; };
    if (arg.kind == Arg::Kind::Param) {
      argSlots[a] = paramAddresses[arg.param];
    } else if (arg.kind == Arg::Kind::Buffer) {
      int64_t offset = 0;
      status = evaluate(arg.offset, context, offset);
      if (!status.ok())
        return status.prefixed(place());
      if (offset < 0 || offset > bufferElements[arg.buffer])
        return Status::error(place() + "offset " + std::to_string(offset) + " is outside '" +
                             layer.bufferNames[arg.buffer] + "' (" +
                             std::to_string(bufferElements[arg.buffer]) + " elements)");
      argSlots[a] = bufferAddresses[arg.buffer] +
                    uint64_t(offset) * dtypeSize(layer.buffers[arg.buffer].dtype);
    } else {
      int64_t value = 0;
      status = evaluate(arg.value, context, value);
      if (!status.ok())
        return status.prefixed(place());
      if (value < std::numeric_limits<int32_t>::min() ||
          value > std::numeric_limits<int32_t>::max())
        return Status::error(place() + "i32 value " + std::to_string(value) +
                             " does not fit in 32 bits");
      int32_t narrow = int32_t(value);
      // The slot's first 4 bytes are the i32 (little-endian hosts and GPUs).
      std::memcpy(&argSlots[a], &narrow, sizeof(narrow));
    }
    argPointers[a] = &argSlots[a];
  }

  LaunchParams params;
  params.kernel = kernelHandles[step.kernel];
  params.grid = {uint32_t(grid[0]), uint32_t(grid[1]), uint32_t(grid[2])};
  params.block = {uint32_t(block[0]), uint32_t(block[1]), uint32_t(block[2])};
  params.sharedBytes = uint32_t(shared);
  params.args = argPointers.data();
  params.numArgs = numArgs;
  params.stream = stream;
  if (!launches)
    return backend->launch(params);
  LaunchRecord record;
  record.step = index;
  record.kernel = plan.kernels[step.kernel].name;
  record.grid = params.grid;
  record.block = params.block;
  MOEQ_RETURN_IF_ERROR(backend->launchTimed(params, record.milliseconds));
  launches->push_back(std::move(record));
  return Status();
}

Status Artifact::executeCopy(const LayerPlan &layer, const Step &step, void *stream) {
  size_t bytes = bufferBytes[step.from];
  if (bufferBytes[step.to] != bytes)
    return Status::error("'" + layer.bufferNames[step.from] + "' has " + std::to_string(bytes) +
                         " bytes, '" + layer.bufferNames[step.to] + "' " +
                         std::to_string(bufferBytes[step.to]) + ": a copy needs equal sizes");
  if (bytes == 0)
    return Status();
  return backend->copyToHost(reinterpret_cast<void *>(bufferAddresses[step.to]),
                             bufferAddresses[step.from], bytes, stream);
}
