//===- WeightsFingerprint.cpp - which model's weights statistics belong to ===//

#include "moeq/IO/WeightsFingerprint.h"
#include "moeq/IO/Checkpoint.h"
#include "moeq/IO/Float16.h"
#include "moeq/IO/ModelConfig.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/SHA256.h"

#include <vector>

using namespace mlir::moeq;

llvm::Expected<std::string> io::weightsFingerprint(const Checkpoint &checkpoint,
                                                   const MoEModelConfig &config) {
  llvm::SHA256 hash;
  std::vector<uint8_t> bytes;
  for (int64_t layer = 0; layer < config.numLayers; ++layer) {
    if (!config.isMoELayer(layer))
      continue;
    std::string name = config.tensorNames.layerPrefix + std::to_string(layer) + "." +
                       config.tensorNames.block + "." + config.tensorNames.router;
    llvm::Expected<std::vector<float>> router =
        checkpoint.readDequantized(name, config.fp8BlockRows, config.fp8BlockCols);
    if (!router)
      return llvm::createStringError("cannot read the router '" + name +
                                     "' for the weights' fingerprint: " +
                                     llvm::toString(router.takeError()));
    bytes.resize(2 * router->size());
    for (size_t i = 0; i < router->size(); ++i) {
      uint16_t bits = floatToBF16((*router)[i]);
      bytes[2 * i] = uint8_t(bits & 0xff);
      bytes[2 * i + 1] = uint8_t(bits >> 8);
    }
    hash.update(bytes);
  }
  std::array<uint8_t, 32> digest = hash.final();
  return "sha256:" + llvm::toHex(digest, /*LowerCase=*/true);
}
