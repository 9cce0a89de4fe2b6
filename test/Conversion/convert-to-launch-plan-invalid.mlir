// RUN: moeq-opt %s -split-input-file -verify-diagnostics -moeq-convert-to-launch-plan

// A layer whose GEMMs have no kernels yet cannot be launched.
module attributes {moeq.target = #moeq.target<"sm_90">} {
func.func @no_kernels(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = moeq.param <"model", "r"> : tensor<1x64xf32>
  %w = moeq.param <"quant", "w"> : !moeq.qweight<64x64, #moeq.scheme<w4a16, g64, asym>>
  %i, %wt = moeq.router %x, %r {top_k = 1 : i64, scoring = #moeq<scoring softmax>}
      : tensor<?x64xf32>, tensor<1x64xf32> -> tensor<?x1xi32>, tensor<?x1xf32>
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 1 : i64}
      : tensor<?x64xf32>, tensor<?x1xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<2xi32>
  // expected-error @+1 {{has no kernels: run moeq-lower-expert-gemms-to-gpu first}}
  %y = moeq.grouped_matmul %s, %o weights(%w : !moeq.qweight<64x64, #moeq.scheme<w4a16, g64, asym>>)
      : tensor<?x64xf32>, tensor<2xi32> -> tensor<?x64xf32>
  %c = moeq.combine %y, %p, %wt : tensor<?x64xf32>, tensor<?xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
  return %c : tensor<?x64xf32>
}
}

// -----

// expected-error @+1 {{no 'moeq.target' attribute: run moeq-lower-expert-gemms-to-gpu first}}
module {
func.func @no_target(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  return %x : tensor<?x64xf32>
}
}

// -----

module attributes {moeq.target = #moeq.target<"sm_90">} {
// expected-error @+1 {{a MoE layer function takes one T x hidden tensor}}
func.func @two_inputs(%x: tensor<?x64xf32>, %i: tensor<?x1xi32>, %wt: tensor<?x1xf32>) -> tensor<?x64xf32> {
  %s, %p, %o = moeq.dispatch %x, %i {num_experts = 1 : i64}
      : tensor<?x64xf32>, tensor<?x1xi32> -> tensor<?x64xf32>, tensor<?xi32>, tensor<2xi32>
  %c = moeq.combine %s, %p, %wt : tensor<?x64xf32>, tensor<?xi32>, tensor<?x1xf32> -> tensor<?x64xf32>
  return %c : tensor<?x64xf32>
}
}

// -----

// More than 4352 bytes of kernel parameters (545 pointers) cannot launch.
module attributes {gpu.container_module, moeq.target = #moeq.target<"sm_90">} {
  gpu.module @wide {
    // expected-error @+1 {{kernel 'wide' takes 4360 bytes of parameters; a kernel may take at most 4352}}
    gpu.func @wide(%a0: !llvm.ptr<1>, %a1: !llvm.ptr<1>, %a2: !llvm.ptr<1>, %a3: !llvm.ptr<1>, %a4: !llvm.ptr<1>, %a5: !llvm.ptr<1>, %a6: !llvm.ptr<1>, %a7: !llvm.ptr<1>, %a8: !llvm.ptr<1>, %a9: !llvm.ptr<1>, %a10: !llvm.ptr<1>, %a11: !llvm.ptr<1>, %a12: !llvm.ptr<1>, %a13: !llvm.ptr<1>, %a14: !llvm.ptr<1>, %a15: !llvm.ptr<1>, %a16: !llvm.ptr<1>, %a17: !llvm.ptr<1>, %a18: !llvm.ptr<1>, %a19: !llvm.ptr<1>, %a20: !llvm.ptr<1>, %a21: !llvm.ptr<1>, %a22: !llvm.ptr<1>, %a23: !llvm.ptr<1>, %a24: !llvm.ptr<1>, %a25: !llvm.ptr<1>, %a26: !llvm.ptr<1>, %a27: !llvm.ptr<1>, %a28: !llvm.ptr<1>, %a29: !llvm.ptr<1>, %a30: !llvm.ptr<1>, %a31: !llvm.ptr<1>, %a32: !llvm.ptr<1>, %a33: !llvm.ptr<1>, %a34: !llvm.ptr<1>, %a35: !llvm.ptr<1>, %a36: !llvm.ptr<1>, %a37: !llvm.ptr<1>, %a38: !llvm.ptr<1>, %a39: !llvm.ptr<1>, %a40: !llvm.ptr<1>, %a41: !llvm.ptr<1>, %a42: !llvm.ptr<1>, %a43: !llvm.ptr<1>, %a44: !llvm.ptr<1>, %a45: !llvm.ptr<1>, %a46: !llvm.ptr<1>, %a47: !llvm.ptr<1>, %a48: !llvm.ptr<1>, %a49: !llvm.ptr<1>, %a50: !llvm.ptr<1>, %a51: !llvm.ptr<1>, %a52: !llvm.ptr<1>, %a53: !llvm.ptr<1>, %a54: !llvm.ptr<1>, %a55: !llvm.ptr<1>, %a56: !llvm.ptr<1>, %a57: !llvm.ptr<1>, %a58: !llvm.ptr<1>, %a59: !llvm.ptr<1>, %a60: !llvm.ptr<1>, %a61: !llvm.ptr<1>, %a62: !llvm.ptr<1>, %a63: !llvm.ptr<1>, %a64: !llvm.ptr<1>, %a65: !llvm.ptr<1>, %a66: !llvm.ptr<1>, %a67: !llvm.ptr<1>, %a68: !llvm.ptr<1>, %a69: !llvm.ptr<1>, %a70: !llvm.ptr<1>, %a71: !llvm.ptr<1>, %a72: !llvm.ptr<1>, %a73: !llvm.ptr<1>, %a74: !llvm.ptr<1>, %a75: !llvm.ptr<1>, %a76: !llvm.ptr<1>, %a77: !llvm.ptr<1>, %a78: !llvm.ptr<1>, %a79: !llvm.ptr<1>, %a80: !llvm.ptr<1>, %a81: !llvm.ptr<1>, %a82: !llvm.ptr<1>, %a83: !llvm.ptr<1>, %a84: !llvm.ptr<1>, %a85: !llvm.ptr<1>, %a86: !llvm.ptr<1>, %a87: !llvm.ptr<1>, %a88: !llvm.ptr<1>, %a89: !llvm.ptr<1>, %a90: !llvm.ptr<1>, %a91: !llvm.ptr<1>, %a92: !llvm.ptr<1>, %a93: !llvm.ptr<1>, %a94: !llvm.ptr<1>, %a95: !llvm.ptr<1>, %a96: !llvm.ptr<1>, %a97: !llvm.ptr<1>, %a98: !llvm.ptr<1>, %a99: !llvm.ptr<1>, %a100: !llvm.ptr<1>, %a101: !llvm.ptr<1>, %a102: !llvm.ptr<1>, %a103: !llvm.ptr<1>, %a104: !llvm.ptr<1>, %a105: !llvm.ptr<1>, %a106: !llvm.ptr<1>, %a107: !llvm.ptr<1>, %a108: !llvm.ptr<1>, %a109: !llvm.ptr<1>, %a110: !llvm.ptr<1>, %a111: !llvm.ptr<1>, %a112: !llvm.ptr<1>, %a113: !llvm.ptr<1>, %a114: !llvm.ptr<1>, %a115: !llvm.ptr<1>, %a116: !llvm.ptr<1>, %a117: !llvm.ptr<1>, %a118: !llvm.ptr<1>, %a119: !llvm.ptr<1>, %a120: !llvm.ptr<1>, %a121: !llvm.ptr<1>, %a122: !llvm.ptr<1>, %a123: !llvm.ptr<1>, %a124: !llvm.ptr<1>, %a125: !llvm.ptr<1>, %a126: !llvm.ptr<1>, %a127: !llvm.ptr<1>, %a128: !llvm.ptr<1>, %a129: !llvm.ptr<1>, %a130: !llvm.ptr<1>, %a131: !llvm.ptr<1>, %a132: !llvm.ptr<1>, %a133: !llvm.ptr<1>, %a134: !llvm.ptr<1>, %a135: !llvm.ptr<1>, %a136: !llvm.ptr<1>, %a137: !llvm.ptr<1>, %a138: !llvm.ptr<1>, %a139: !llvm.ptr<1>, %a140: !llvm.ptr<1>, %a141: !llvm.ptr<1>, %a142: !llvm.ptr<1>, %a143: !llvm.ptr<1>, %a144: !llvm.ptr<1>, %a145: !llvm.ptr<1>, %a146: !llvm.ptr<1>, %a147: !llvm.ptr<1>, %a148: !llvm.ptr<1>, %a149: !llvm.ptr<1>, %a150: !llvm.ptr<1>, %a151: !llvm.ptr<1>, %a152: !llvm.ptr<1>, %a153: !llvm.ptr<1>, %a154: !llvm.ptr<1>, %a155: !llvm.ptr<1>, %a156: !llvm.ptr<1>, %a157: !llvm.ptr<1>, %a158: !llvm.ptr<1>, %a159: !llvm.ptr<1>, %a160: !llvm.ptr<1>, %a161: !llvm.ptr<1>, %a162: !llvm.ptr<1>, %a163: !llvm.ptr<1>, %a164: !llvm.ptr<1>, %a165: !llvm.ptr<1>, %a166: !llvm.ptr<1>, %a167: !llvm.ptr<1>, %a168: !llvm.ptr<1>, %a169: !llvm.ptr<1>, %a170: !llvm.ptr<1>, %a171: !llvm.ptr<1>, %a172: !llvm.ptr<1>, %a173: !llvm.ptr<1>, %a174: !llvm.ptr<1>, %a175: !llvm.ptr<1>, %a176: !llvm.ptr<1>, %a177: !llvm.ptr<1>, %a178: !llvm.ptr<1>, %a179: !llvm.ptr<1>, %a180: !llvm.ptr<1>, %a181: !llvm.ptr<1>, %a182: !llvm.ptr<1>, %a183: !llvm.ptr<1>, %a184: !llvm.ptr<1>, %a185: !llvm.ptr<1>, %a186: !llvm.ptr<1>, %a187: !llvm.ptr<1>, %a188: !llvm.ptr<1>, %a189: !llvm.ptr<1>, %a190: !llvm.ptr<1>, %a191: !llvm.ptr<1>, %a192: !llvm.ptr<1>, %a193: !llvm.ptr<1>, %a194: !llvm.ptr<1>, %a195: !llvm.ptr<1>, %a196: !llvm.ptr<1>, %a197: !llvm.ptr<1>, %a198: !llvm.ptr<1>, %a199: !llvm.ptr<1>, %a200: !llvm.ptr<1>, %a201: !llvm.ptr<1>, %a202: !llvm.ptr<1>, %a203: !llvm.ptr<1>, %a204: !llvm.ptr<1>, %a205: !llvm.ptr<1>, %a206: !llvm.ptr<1>, %a207: !llvm.ptr<1>, %a208: !llvm.ptr<1>, %a209: !llvm.ptr<1>, %a210: !llvm.ptr<1>, %a211: !llvm.ptr<1>, %a212: !llvm.ptr<1>, %a213: !llvm.ptr<1>, %a214: !llvm.ptr<1>, %a215: !llvm.ptr<1>, %a216: !llvm.ptr<1>, %a217: !llvm.ptr<1>, %a218: !llvm.ptr<1>, %a219: !llvm.ptr<1>, %a220: !llvm.ptr<1>, %a221: !llvm.ptr<1>, %a222: !llvm.ptr<1>, %a223: !llvm.ptr<1>, %a224: !llvm.ptr<1>, %a225: !llvm.ptr<1>, %a226: !llvm.ptr<1>, %a227: !llvm.ptr<1>, %a228: !llvm.ptr<1>, %a229: !llvm.ptr<1>, %a230: !llvm.ptr<1>, %a231: !llvm.ptr<1>, %a232: !llvm.ptr<1>, %a233: !llvm.ptr<1>, %a234: !llvm.ptr<1>, %a235: !llvm.ptr<1>, %a236: !llvm.ptr<1>, %a237: !llvm.ptr<1>, %a238: !llvm.ptr<1>, %a239: !llvm.ptr<1>, %a240: !llvm.ptr<1>, %a241: !llvm.ptr<1>, %a242: !llvm.ptr<1>, %a243: !llvm.ptr<1>, %a244: !llvm.ptr<1>, %a245: !llvm.ptr<1>, %a246: !llvm.ptr<1>, %a247: !llvm.ptr<1>, %a248: !llvm.ptr<1>, %a249: !llvm.ptr<1>, %a250: !llvm.ptr<1>, %a251: !llvm.ptr<1>, %a252: !llvm.ptr<1>, %a253: !llvm.ptr<1>, %a254: !llvm.ptr<1>, %a255: !llvm.ptr<1>, %a256: !llvm.ptr<1>, %a257: !llvm.ptr<1>, %a258: !llvm.ptr<1>, %a259: !llvm.ptr<1>, %a260: !llvm.ptr<1>, %a261: !llvm.ptr<1>, %a262: !llvm.ptr<1>, %a263: !llvm.ptr<1>, %a264: !llvm.ptr<1>, %a265: !llvm.ptr<1>, %a266: !llvm.ptr<1>, %a267: !llvm.ptr<1>, %a268: !llvm.ptr<1>, %a269: !llvm.ptr<1>, %a270: !llvm.ptr<1>, %a271: !llvm.ptr<1>, %a272: !llvm.ptr<1>, %a273: !llvm.ptr<1>, %a274: !llvm.ptr<1>, %a275: !llvm.ptr<1>, %a276: !llvm.ptr<1>, %a277: !llvm.ptr<1>, %a278: !llvm.ptr<1>, %a279: !llvm.ptr<1>, %a280: !llvm.ptr<1>, %a281: !llvm.ptr<1>, %a282: !llvm.ptr<1>, %a283: !llvm.ptr<1>, %a284: !llvm.ptr<1>, %a285: !llvm.ptr<1>, %a286: !llvm.ptr<1>, %a287: !llvm.ptr<1>, %a288: !llvm.ptr<1>, %a289: !llvm.ptr<1>, %a290: !llvm.ptr<1>, %a291: !llvm.ptr<1>, %a292: !llvm.ptr<1>, %a293: !llvm.ptr<1>, %a294: !llvm.ptr<1>, %a295: !llvm.ptr<1>, %a296: !llvm.ptr<1>, %a297: !llvm.ptr<1>, %a298: !llvm.ptr<1>, %a299: !llvm.ptr<1>, %a300: !llvm.ptr<1>, %a301: !llvm.ptr<1>, %a302: !llvm.ptr<1>, %a303: !llvm.ptr<1>, %a304: !llvm.ptr<1>, %a305: !llvm.ptr<1>, %a306: !llvm.ptr<1>, %a307: !llvm.ptr<1>, %a308: !llvm.ptr<1>, %a309: !llvm.ptr<1>, %a310: !llvm.ptr<1>, %a311: !llvm.ptr<1>, %a312: !llvm.ptr<1>, %a313: !llvm.ptr<1>, %a314: !llvm.ptr<1>, %a315: !llvm.ptr<1>, %a316: !llvm.ptr<1>, %a317: !llvm.ptr<1>, %a318: !llvm.ptr<1>, %a319: !llvm.ptr<1>, %a320: !llvm.ptr<1>, %a321: !llvm.ptr<1>, %a322: !llvm.ptr<1>, %a323: !llvm.ptr<1>, %a324: !llvm.ptr<1>, %a325: !llvm.ptr<1>, %a326: !llvm.ptr<1>, %a327: !llvm.ptr<1>, %a328: !llvm.ptr<1>, %a329: !llvm.ptr<1>, %a330: !llvm.ptr<1>, %a331: !llvm.ptr<1>, %a332: !llvm.ptr<1>, %a333: !llvm.ptr<1>, %a334: !llvm.ptr<1>, %a335: !llvm.ptr<1>, %a336: !llvm.ptr<1>, %a337: !llvm.ptr<1>, %a338: !llvm.ptr<1>, %a339: !llvm.ptr<1>, %a340: !llvm.ptr<1>, %a341: !llvm.ptr<1>, %a342: !llvm.ptr<1>, %a343: !llvm.ptr<1>, %a344: !llvm.ptr<1>, %a345: !llvm.ptr<1>, %a346: !llvm.ptr<1>, %a347: !llvm.ptr<1>, %a348: !llvm.ptr<1>, %a349: !llvm.ptr<1>, %a350: !llvm.ptr<1>, %a351: !llvm.ptr<1>, %a352: !llvm.ptr<1>, %a353: !llvm.ptr<1>, %a354: !llvm.ptr<1>, %a355: !llvm.ptr<1>, %a356: !llvm.ptr<1>, %a357: !llvm.ptr<1>, %a358: !llvm.ptr<1>, %a359: !llvm.ptr<1>, %a360: !llvm.ptr<1>, %a361: !llvm.ptr<1>, %a362: !llvm.ptr<1>, %a363: !llvm.ptr<1>, %a364: !llvm.ptr<1>, %a365: !llvm.ptr<1>, %a366: !llvm.ptr<1>, %a367: !llvm.ptr<1>, %a368: !llvm.ptr<1>, %a369: !llvm.ptr<1>, %a370: !llvm.ptr<1>, %a371: !llvm.ptr<1>, %a372: !llvm.ptr<1>, %a373: !llvm.ptr<1>, %a374: !llvm.ptr<1>, %a375: !llvm.ptr<1>, %a376: !llvm.ptr<1>, %a377: !llvm.ptr<1>, %a378: !llvm.ptr<1>, %a379: !llvm.ptr<1>, %a380: !llvm.ptr<1>, %a381: !llvm.ptr<1>, %a382: !llvm.ptr<1>, %a383: !llvm.ptr<1>, %a384: !llvm.ptr<1>, %a385: !llvm.ptr<1>, %a386: !llvm.ptr<1>, %a387: !llvm.ptr<1>, %a388: !llvm.ptr<1>, %a389: !llvm.ptr<1>, %a390: !llvm.ptr<1>, %a391: !llvm.ptr<1>, %a392: !llvm.ptr<1>, %a393: !llvm.ptr<1>, %a394: !llvm.ptr<1>, %a395: !llvm.ptr<1>, %a396: !llvm.ptr<1>, %a397: !llvm.ptr<1>, %a398: !llvm.ptr<1>, %a399: !llvm.ptr<1>, %a400: !llvm.ptr<1>, %a401: !llvm.ptr<1>, %a402: !llvm.ptr<1>, %a403: !llvm.ptr<1>, %a404: !llvm.ptr<1>, %a405: !llvm.ptr<1>, %a406: !llvm.ptr<1>, %a407: !llvm.ptr<1>, %a408: !llvm.ptr<1>, %a409: !llvm.ptr<1>, %a410: !llvm.ptr<1>, %a411: !llvm.ptr<1>, %a412: !llvm.ptr<1>, %a413: !llvm.ptr<1>, %a414: !llvm.ptr<1>, %a415: !llvm.ptr<1>, %a416: !llvm.ptr<1>, %a417: !llvm.ptr<1>, %a418: !llvm.ptr<1>, %a419: !llvm.ptr<1>, %a420: !llvm.ptr<1>, %a421: !llvm.ptr<1>, %a422: !llvm.ptr<1>, %a423: !llvm.ptr<1>, %a424: !llvm.ptr<1>, %a425: !llvm.ptr<1>, %a426: !llvm.ptr<1>, %a427: !llvm.ptr<1>, %a428: !llvm.ptr<1>, %a429: !llvm.ptr<1>, %a430: !llvm.ptr<1>, %a431: !llvm.ptr<1>, %a432: !llvm.ptr<1>, %a433: !llvm.ptr<1>, %a434: !llvm.ptr<1>, %a435: !llvm.ptr<1>, %a436: !llvm.ptr<1>, %a437: !llvm.ptr<1>, %a438: !llvm.ptr<1>, %a439: !llvm.ptr<1>, %a440: !llvm.ptr<1>, %a441: !llvm.ptr<1>, %a442: !llvm.ptr<1>, %a443: !llvm.ptr<1>, %a444: !llvm.ptr<1>, %a445: !llvm.ptr<1>, %a446: !llvm.ptr<1>, %a447: !llvm.ptr<1>, %a448: !llvm.ptr<1>, %a449: !llvm.ptr<1>, %a450: !llvm.ptr<1>, %a451: !llvm.ptr<1>, %a452: !llvm.ptr<1>, %a453: !llvm.ptr<1>, %a454: !llvm.ptr<1>, %a455: !llvm.ptr<1>, %a456: !llvm.ptr<1>, %a457: !llvm.ptr<1>, %a458: !llvm.ptr<1>, %a459: !llvm.ptr<1>, %a460: !llvm.ptr<1>, %a461: !llvm.ptr<1>, %a462: !llvm.ptr<1>, %a463: !llvm.ptr<1>, %a464: !llvm.ptr<1>, %a465: !llvm.ptr<1>, %a466: !llvm.ptr<1>, %a467: !llvm.ptr<1>, %a468: !llvm.ptr<1>, %a469: !llvm.ptr<1>, %a470: !llvm.ptr<1>, %a471: !llvm.ptr<1>, %a472: !llvm.ptr<1>, %a473: !llvm.ptr<1>, %a474: !llvm.ptr<1>, %a475: !llvm.ptr<1>, %a476: !llvm.ptr<1>, %a477: !llvm.ptr<1>, %a478: !llvm.ptr<1>, %a479: !llvm.ptr<1>, %a480: !llvm.ptr<1>, %a481: !llvm.ptr<1>, %a482: !llvm.ptr<1>, %a483: !llvm.ptr<1>, %a484: !llvm.ptr<1>, %a485: !llvm.ptr<1>, %a486: !llvm.ptr<1>, %a487: !llvm.ptr<1>, %a488: !llvm.ptr<1>, %a489: !llvm.ptr<1>, %a490: !llvm.ptr<1>, %a491: !llvm.ptr<1>, %a492: !llvm.ptr<1>, %a493: !llvm.ptr<1>, %a494: !llvm.ptr<1>, %a495: !llvm.ptr<1>, %a496: !llvm.ptr<1>, %a497: !llvm.ptr<1>, %a498: !llvm.ptr<1>, %a499: !llvm.ptr<1>, %a500: !llvm.ptr<1>, %a501: !llvm.ptr<1>, %a502: !llvm.ptr<1>, %a503: !llvm.ptr<1>, %a504: !llvm.ptr<1>, %a505: !llvm.ptr<1>, %a506: !llvm.ptr<1>, %a507: !llvm.ptr<1>, %a508: !llvm.ptr<1>, %a509: !llvm.ptr<1>, %a510: !llvm.ptr<1>, %a511: !llvm.ptr<1>, %a512: !llvm.ptr<1>, %a513: !llvm.ptr<1>, %a514: !llvm.ptr<1>, %a515: !llvm.ptr<1>, %a516: !llvm.ptr<1>, %a517: !llvm.ptr<1>, %a518: !llvm.ptr<1>, %a519: !llvm.ptr<1>, %a520: !llvm.ptr<1>, %a521: !llvm.ptr<1>, %a522: !llvm.ptr<1>, %a523: !llvm.ptr<1>, %a524: !llvm.ptr<1>, %a525: !llvm.ptr<1>, %a526: !llvm.ptr<1>, %a527: !llvm.ptr<1>, %a528: !llvm.ptr<1>, %a529: !llvm.ptr<1>, %a530: !llvm.ptr<1>, %a531: !llvm.ptr<1>, %a532: !llvm.ptr<1>, %a533: !llvm.ptr<1>, %a534: !llvm.ptr<1>, %a535: !llvm.ptr<1>, %a536: !llvm.ptr<1>, %a537: !llvm.ptr<1>, %a538: !llvm.ptr<1>, %a539: !llvm.ptr<1>, %a540: !llvm.ptr<1>, %a541: !llvm.ptr<1>, %a542: !llvm.ptr<1>, %a543: !llvm.ptr<1>, %a544: !llvm.ptr<1>) kernel {
      gpu.return
    }
  }
}

// -----

// A launch whose dynamic and static shared memory together exceed what the
// chip allows one block (sm_80: 163 KiB = 166912 bytes) cannot run.
module attributes {gpu.container_module, moeq.target = #moeq.target<"sm_80">} {
  gpu.module @big {
    gpu.func @big(%p: !llvm.ptr<1>) workgroup(%tile: memref<1024xf32, #gpu.address_space<workgroup>>) kernel {
      gpu.return
    }
  }
  func.func @launch_big(%p: !llvm.ptr<1>) {
    %c1 = arith.constant 1 : index
    %smem = arith.constant 163840 : i32
    // expected-error @+1 {{launch of kernel 'big' needs 167936 bytes of shared memory per block; sm_80 allows at most 166912}}
    gpu.launch_func @big::@big blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) dynamic_shared_memory_size %smem args(%p : !llvm.ptr<1>)
    return
  }
}

// -----

module attributes {gpu.container_module, moeq.target = #moeq.target<"sm_90">} {
  gpu.module @many {
    gpu.func @many(%p: !llvm.ptr<1>) kernel {
      gpu.return
    }
  }
  func.func @launch_many(%p: !llvm.ptr<1>) {
    %c1 = arith.constant 1 : index
    %c2048 = arith.constant 2048 : index
    // expected-error @+1 {{launch of kernel 'many' has 2048 threads per block; a block may have at most 1024}}
    gpu.launch_func @many::@many blocks in (%c1, %c1, %c1) threads in (%c2048, %c1, %c1) args(%p : !llvm.ptr<1>)
    return
  }
}
