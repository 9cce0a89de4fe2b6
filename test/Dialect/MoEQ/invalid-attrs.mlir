// One case per attribute/type verifier and parser error.
// RUN: moeq-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{weight bits must be 1-8 or 16, got 9}}
func.func private @f() attributes {s = #moeq.scheme<w9a16, g128, asym>}

// -----

// expected-error @+1 {{activation bits must be 4, 8 or 16, got 12}}
func.func private @f() attributes {s = #moeq.scheme<w4a12, g128, asym>}

// -----

// expected-error @+1 {{group size must be a positive multiple of 8 or per_channel, got 100}}
func.func private @f() attributes {s = #moeq.scheme<w4a16, g100, asym>}

// -----

// expected-error @+1 {{weight-activation schemes must be integer w8a8 or w4a4, got w4a8}}
func.func private @f() attributes {s = #moeq.scheme<w4a8, g128, sym>}

// -----

// expected-error @+1 {{fp8_e4m3 format needs 8 weight bits}}
func.func private @f() attributes {s = #moeq.scheme<w4a16, g128, sym, fp8_e4m3>}

// -----

// expected-error @+1 {{level-table format supports at most 4 bits, got 8}}
func.func private @f() attributes {s = #moeq.scheme<w8a16, g128, asym, lut>}

// -----

// expected-error @+1 {{level-table format stores its levels, it cannot be 'sym'}}
func.func private @f() attributes {s = #moeq.scheme<w3a16, g128, sym, lut>}

// -----

// expected-error @+1 {{group bits do not combine with level tables}}
func.func private @f(!moeq.qweight<8x64, #moeq.scheme<w2a16, g32, asym, lut>, group_bits = [1, 3]>)

// -----

// expected-error @+1 {{expected weight/activation bits like 'w4a16'}}
func.func private @f() attributes {s = #moeq.scheme<int4, g128, asym>}

// -----

// expected-error @+1 {{expected group size like 'g128' or 'per_channel'}}
func.func private @f() attributes {s = #moeq.scheme<w4a16, group128, asym>}

// -----

// expected-error @+1 {{expected 'sym' or 'asym'}}
func.func private @f() attributes {s = #moeq.scheme<w4a16, g128, symmetric>}

// -----

// expected-error @+1 {{unknown number format 'nf4'}}
func.func private @f() attributes {s = #moeq.scheme<w4a16, g128, asym, nf4>}

// -----

// expected-error @+1 {{parameter scope must not be empty}}
func.func private @f() attributes {p = #moeq.param<"", "w">}

// -----

// expected-error @+1 {{parameter key must not be empty}}
func.func private @f() attributes {p = #moeq.param<"model", "">}

// -----

// expected-error @+1 {{tile bn must be a positive power of two, got 96}}
func.func private @f() attributes {t = #moeq.tile<path = mma, bm = 16, bn = 96, bk = 64, warps = 4, stages = 2, split_k = 1>}

// -----

// expected-error @+1 {{warps must be a power of two in [1, 32], got 3}}
func.func private @f() attributes {t = #moeq.tile<path = mma, bm = 16, bn = 64, bk = 64, warps = 3, stages = 2, split_k = 1>}

// -----

// expected-error @+1 {{pipeline stages must be in [1, 8], got 0}}
func.func private @f() attributes {t = #moeq.tile<path = mma, bm = 16, bn = 64, bk = 64, warps = 4, stages = 0, split_k = 1>}

// -----

// expected-error @+1 {{split_k must be at least 1, got 0}}
func.func private @f() attributes {t = #moeq.tile<path = mma, bm = 16, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 0>}

// -----

// The kernel family is an enum of the dialect.
// expected-error @+2 {{expected ::mlir::moeq::KernelFamily to be one of: simt, mma}}
// expected-error @+1 {{failed to parse MoEQ_TileConfigAttr parameter 'path'}}
func.func private @f() attributes {t = #moeq.tile<path = wmma, bm = 16, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>}

// -----

// expected-error @+1 {{an mma tile needs bm >= 16, bn >= 8 and bk >= 16, got 1x128x32}}
func.func private @f() attributes {t = #moeq.tile<path = mma, bm = 1, bn = 128, bk = 32, warps = 4, stages = 1, split_k = 1>}

// -----

// One stage cannot overlap loads with math (the kernel would wait for -1
// cp.async groups); the SIMT path has no pipeline and takes stages = 1.
// expected-error @+1 {{an mma tile pipelines K through at least 2 stages, got 1}}
func.func private @f() attributes {t = #moeq.tile<path = mma, bm = 16, bn = 64, bk = 64, warps = 4, stages = 1, split_k = 1>}

// -----

// wgmma tiles: warpgroups of 4 warps, 64 rows each.
// expected-error @+1 {{a wgmma tile needs warpgroups of 4 warps owning 64 rows each, got 32 rows on 4 warps}}
func.func private @f() attributes {t = #moeq.tile<path = wgmma, bm = 32, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>}

// -----

// 128 rows need two warpgroups.
// expected-error @+1 {{a wgmma tile needs warpgroups of 4 warps owning 64 rows each, got 128 rows on 4 warps}}
func.func private @f() attributes {t = #moeq.tile<path = wgmma, bm = 128, bn = 64, bk = 64, warps = 4, stages = 2, split_k = 1>}

// -----

// One warpgroup's columns are one wgmma N: at most 256.
// expected-error @+1 {{a wgmma tile needs n8 blocks of at most 256 columns per warpgroup and bk a multiple of 16, got 512 columns on 1 warpgroups, bk 64}}
func.func private @f() attributes {t = #moeq.tile<path = wgmma, bm = 64, bn = 512, bk = 64, warps = 4, stages = 2, split_k = 1>}

// -----

// expected-error @+1 {{a wgmma tile does not split K, got split_k 2}}
func.func private @f() attributes {t = #moeq.tile<path = wgmma, bm = 64, bn = 128, bk = 64, warps = 4, stages = 2, split_k = 2>}

// -----

// expected-error @+1 {{an mma tile pipelines K through at least 2 stages, got 1}}
func.func private @f() attributes {t = #moeq.tile<path = wgmma, bm = 64, bn = 128, bk = 64, warps = 4, stages = 1, split_k = 1>}

// -----

// expected-error @+1 {{unknown GPU architecture 'sm_75'}}
func.func private @f() attributes {t = #moeq.target<"sm_75">}

// -----

// expected-error @+1 {{packed weight must be 2-D (out x in), got rank 3}}
func.func private @f(!moeq.qweight<2x64x64, #moeq.scheme<w4a16, g32, asym>>)

// -----

// expected-error @+1 {{packed weight dimensions must be positive}}
func.func private @f(!moeq.qweight<0x64, #moeq.scheme<w4a16, g32, asym>>)

// -----

// expected-error @+1 {{packed weight needs a scheme below 16 bits}}
func.func private @f(!moeq.qweight<64x64, #moeq.scheme<w16a16, g32, asym>>)

// -----

// expected-error @+1 {{input dimension 96 is not a multiple of the group size 64}}
func.func private @f(!moeq.qweight<64x96, #moeq.scheme<w4a16, g64, asym>>)

// -----

// expected-error @+1 {{group bits must give one width per column group (4), got 3}}
func.func private @f(!moeq.qweight<64x128, #moeq.scheme<w2a16, g32, asym>, group_bits = [2, 2, 2]>)

// -----

// expected-error @+1 {{group bits must average the scheme's 2 bits, got 9 over 4 groups}}
func.func private @f(!moeq.qweight<64x128, #moeq.scheme<w2a16, g32, asym>, group_bits = [3, 2, 2, 2]>)

// -----

// expected-error @+1 {{group bits must be 1-8, got 0}}
func.func private @f(!moeq.qweight<64x128, #moeq.scheme<w2a16, g32, asym>, group_bits = [0, 4, 2, 2]>)

// -----

// expected-error @+1 {{group bits need an asymmetric weight-only scheme with column groups}}
func.func private @f(!moeq.qweight<64x128, #moeq.scheme<w2a16, g32, sym>, group_bits = [1, 3, 2, 2]>)

// -----

// expected-error @+1 {{group bits need an asymmetric weight-only scheme with column groups}}
func.func private @f(!moeq.qweight<64x128, #moeq.scheme<w2a16, per_channel, asym>, group_bits = [2]>)

// -----

// expected-error @+1 {{a group of 8 x 1-bit codes does not fill whole 32-bit words}}
func.func private @f(!moeq.qweight<64x16, #moeq.scheme<w2a16, g8, asym>, group_bits = [1, 3]>)

// -----

// expected-error @+1 {{expected 'group_bits'}}
func.func private @f(!moeq.qweight<64x128, #moeq.scheme<w2a16, g32, asym>, bits = [2, 2, 2, 2]>)

// -----

// expected-error @+1 {{parameter index must be non-negative, got -2}}
func.func private @f() attributes {p = #moeq.param<"model", "w" index -2>}

// -----

// expected-error @+1 {{parameter rows must be [offset >= 0, count > 0], got [4, 0]}}
func.func private @f() attributes {p = #moeq.param<"model", "w" rows [4, 0]>}

// -----

// expected-error @+1 {{parameter row step must be at least 1, got 0}}
func.func private @f() attributes {p = #moeq.param<"model", "w" rows [0, 4] step 0>}

// -----

// expected-error @+1 {{parameter row step 2 needs a row range}}
func.func private @f() attributes {p = #moeq.param<"model", "w" index 1 transposed step 2>}
