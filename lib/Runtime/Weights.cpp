//===- Weights.cpp - resolve and upload device parameters -----------------===//
#include "moeq/Runtime/Weights.h"
#include "moeq/Runtime/MemoryLimit.h"

#include <cstring>

using namespace moeq::runtime;

namespace {

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

int64_t product(std::vector<int64_t>::const_iterator begin,
                std::vector<int64_t>::const_iterator end) {
  int64_t elements = 1;
  for (auto it = begin; it != end; ++it)
    elements *= *it; // the file's element count was checked not to overflow
  return elements;
}

/// Applies `index`, `transposed` and `rows` (with `step`) to the tensor's
/// shape: the selected shape, and the contiguous run of stored elements it
/// lies in (`first`, `count`; a transposed or strided selection is gathered
/// from that run, `gather`).
Status selectElements(const DeviceParam &param, const TensorEntry &entry,
                      std::vector<int64_t> &shape, int64_t &first, int64_t &count,
                      MatrixGather &gather) {
  shape = entry.shape;
  first = 0;
  if (param.index >= 0) {
    if (shape.size() < 2)
      return Status::error("\"index\" selects one matrix of a stacked tensor, but '" +
                           entry.name + "' has shape " + shapeText(entry.shape));
    if (param.index >= shape[0])
      return Status::error("index " + std::to_string(param.index) + " is outside the " +
                           std::to_string(shape[0]) + " matrices of '" + entry.name + "' " +
                           shapeText(entry.shape));
    first = param.index * product(shape.begin() + 1, shape.end());
    shape.erase(shape.begin());
  }
  count = product(shape.begin(), shape.end());
  gather = MatrixGather();
  if (param.transposed || param.rowStep > 1) {
    // (A vector's elements are the rows of an n x 1 matrix: gpt-oss's
    // interleaved biases.)
    bool vector = shape.size() == 1 && !param.transposed;
    if (shape.size() != 2 && !vector)
      return Status::error("\"transposed\" and \"step\" select from a matrix, but '" +
                           entry.name + "' selects shape " + shapeText(shape));
    gather = {true, shape[0], vector ? 1 : shape[1], param.transposed, 0, -1, 1};
    if (param.transposed)
      std::swap(shape[0], shape[1]);
  }
  if (param.hasRows) {
    int64_t last = param.rowOffset + (param.rowCount - 1) * param.rowStep;
    if (shape.empty() || param.rowCount < 1 || last >= shape[0])
      return Status::error("rows [" + std::to_string(param.rowOffset) + ", " +
                           std::to_string(param.rowCount) + "]" +
                           (param.rowStep > 1 ? " step " + std::to_string(param.rowStep)
                                              : std::string()) +
                           " are outside '" + entry.name + "' " + shapeText(entry.shape) +
                           (param.index >= 0 ? " (matrix " + std::to_string(param.index) + ")"
                                             : std::string()));
    if (gather.active) {
      gather.rowOffset = param.rowOffset;
      gather.rowCount = param.rowCount;
      gather.rowStep = param.rowStep;
    } else {
      first += param.rowOffset * product(shape.begin() + 1, shape.end());
      count = param.rowCount * product(shape.begin() + 1, shape.end());
    }
    shape[0] = param.rowCount;
  }
  return Status();
}

} // namespace

Status DeviceParamSources::resolve(size_t index, Source &source) {
  const DeviceParam &param = params[index];
  std::string path = joinPath(directory, param.file);
  auto it = files.find(path);
  if (it == files.end()) {
    // Checked before it is parsed: a truncated or altered weight file is
    // refused as such, not by whatever its bytes now say.
    if (checkDigests)
      MOEQ_RETURN_IF_ERROR(checkFileDigest(directory, param.file, digests));
    std::unique_ptr<SafeTensorsFile> file;
    MOEQ_RETURN_IF_ERROR(SafeTensorsFile::open(path, file));
    it = files.emplace(path, std::move(file)).first;
  }
  source.file = it->second.get();
  source.entry = source.file->find(param.tensor);
  if (!source.entry)
    return Status::error("no tensor '" + param.tensor + "' in " + path);
  if (!canConvert(source.entry->dtype, param.dtype))
    return Status::error("tensor '" + param.tensor + "' of " + path + " is " +
                         source.entry->dtype + ", which does not convert to " +
                         dtypeName(param.dtype));
  std::vector<int64_t> selected;
  MOEQ_RETURN_IF_ERROR(selectElements(param, *source.entry, selected, source.firstElement,
                                      source.count, source.gather)
                           .prefixed(path + ": "));
  if (selected != param.shape)
    return Status::error("tensor '" + param.tensor + "' of " + path + " selects shape " +
                         shapeText(selected) + " (of " + shapeText(source.entry->shape) +
                         "), the manifest says " + shapeText(param.shape));
  return Status();
}

Status DeviceParamSources::open(const Manifest &artifact) {
  params = artifact.deviceParams;
  manifestPath = artifact.path;
  directory = artifact.directory;
  digests = artifact.files;
  checkDigests = artifact.checkDigests;
  files.clear();
  sources.assign(artifact.deviceParams.size(), Source());
  for (size_t i = 0; i < sources.size(); ++i)
    if (params[i].addresses.empty())
      MOEQ_RETURN_IF_ERROR(resolve(i, sources[i])
                             .prefixed(artifact.path + ": device_params[" +
                                       std::to_string(i) + "]: "));
  return Status();
}

Status DeviceParamSources::upload(Device &device, std::vector<DeviceAddress> &addresses) const {
  addresses.assign(sources.size(), 0);
  std::vector<uint8_t> staging, gathered;
  auto releaseAll = [&] {
    for (DeviceAddress address : addresses)
      device.release(address);
    addresses.assign(sources.size(), 0);
  };
  for (size_t i = 0; i < sources.size(); ++i) {
    if (!params[i].addresses.empty())
      continue; // address tables: below, once the tensors have addresses
    const Source &source = sources[i];
    DType dtype = params[i].dtype;
    size_t bytes = size_t(source.count) * dtypeSize(dtype);
    const uint8_t *first =
        source.file->data(*source.entry) + source.firstElement * source.entry->elementSize;
    std::string tooLarge = checkAllocationSize(
        2 * bytes, "converting device_params[" + std::to_string(i) + "] ('" +
                       source.entry->name + "')");
    if (!tooLarge.empty()) {
      releaseAll();
      return Status::error(manifestPath + ": " + tooLarge);
    }
    staging.resize(bytes);
    Status status = convertElements(source.entry->dtype, first, source.count, dtype,
                                    staging.data());
    if (status.ok() && source.gather.active) {
      // A transposed or strided selection of the converted matrix.
      gathered.resize(source.gather.elements() * dtypeSize(dtype));
      source.gather.apply(staging.data(), dtypeSize(dtype), gathered.data());
      staging.swap(gathered);
      bytes = staging.size();
    }
    if (status.ok())
      status = device.allocate(bytes, addresses[i]);
    if (status.ok())
      status = device.copyToDevice(addresses[i], staging.data(), bytes);
    if (!status.ok()) {
      releaseAll();
      return status.prefixed(manifestPath + ": uploading device_params[" + std::to_string(i) +
                             "] ('" + source.entry->name + "'): ");
    }
  }
  std::vector<uint64_t> table;
  for (size_t i = 0; i < sources.size(); ++i) {
    const DeviceParam &param = params[i];
    if (param.addresses.empty())
      continue;
    int64_t columns = param.shape[1];
    table.assign(param.addresses.size() * columns, 0);
    for (size_t r = 0; r < param.addresses.size(); ++r)
      for (size_t c = 0; c < param.addresses[r].size(); ++c)
        table[r * columns + c] = addresses[param.addresses[r][c]];
    size_t bytes = table.size() * sizeof(uint64_t);
    Status status = device.allocate(bytes, addresses[i]);
    if (status.ok())
      status = device.copyToDevice(addresses[i], table.data(), bytes);
    if (!status.ok()) {
      releaseAll();
      return status.prefixed(manifestPath + ": uploading the address table device_params[" +
                             std::to_string(i) + "]: ");
    }
  }
  return Status();
}
