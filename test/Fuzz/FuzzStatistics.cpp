//===- FuzzStatistics.cpp - libFuzzer target: calibration statistics ------===//
//
// The input is a statistics directory (format version 2): its index
// stats.json and layer 0's file. StatisticsReader must accept them or fail
// with an error; an accepted reader is checked against a model and every
// tensor of layer 0 is read as float64, as moeq-compile reads them.
//
//===----------------------------------------------------------------------===//
#include "FuzzInputFiles.h"

#include "moeq/Calibration/StatisticsFiles.h"
#include "moeq/IO/SafeTensors.h"

#include "llvm/Support/Error.h"

using namespace mlir::moeq;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider input(data, size);
  moeq_fuzz::writeFile("stats.json", moeq_fuzz::nextText(input, 2048));
  moeq_fuzz::writeFile(calib::layerFileName(0), moeq_fuzz::rest(input));
  auto reader = calib::StatisticsReader::open(moeq_fuzz::scratchDirectory());
  if (!reader) {
    llvm::consumeError(reader.takeError());
    return 0;
  }
  calib::ModelDescription model;
  model.modelType = "mixtral";
  model.numLayers = 2;
  model.hidden = 8;
  model.intermediate = 16;
  model.experts = 2;
  model.topK = 1;
  model.moeLayers = {0, 1};
  if (llvm::Error err = (*reader)->checkModel(model, "the fuzz model"))
    llvm::consumeError(std::move(err));
  (void)(*reader)->moeLayers();
  // Layer 0's tensors, found through the reader (which opens and checks the
  // layer file against the index on first use).
  const io::SafeTensorsFile *file = nullptr;
  auto tokens = (*reader)->find("layers.0.tokens", &file);
  if (!tokens) {
    llvm::consumeError(tokens.takeError());
    return 0;
  }
  if (!file)
    return 0;
  for (const io::TensorInfo &info : file->tensors()) {
    if (info.numBytes() > (1u << 20))
      continue;
    auto values = (*reader)->readFloat64(info.name, info.shape);
    if (!values)
      llvm::consumeError(values.takeError());
  }
  return 0;
}
