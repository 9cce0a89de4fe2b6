; reverse_rows(x: f16*, y: f16*, tokens: i32, cols: i32*) in the emulation
; form: y[tokens - 1 - ctaid.x][tid.x] = x[ctaid.x][tid.x], cols = *cols.
declare i32 @moeq_emu_sreg(i32)

define void @reverse_rows_packed(ptr %args) {
entry:
  %x.slot = load ptr, ptr %args
  %x = load ptr, ptr %x.slot
  %y.p = getelementptr ptr, ptr %args, i64 1
  %y.slot = load ptr, ptr %y.p
  %y = load ptr, ptr %y.slot
  %tokens.p = getelementptr ptr, ptr %args, i64 2
  %tokens.slot = load ptr, ptr %tokens.p
  %tokens = load i32, ptr %tokens.slot
  %cols.p = getelementptr ptr, ptr %args, i64 3
  %cols.slot = load ptr, ptr %cols.p
  %cols.ptr = load ptr, ptr %cols.slot
  %cols = load i32, ptr %cols.ptr
  %row = call i32 @moeq_emu_sreg(i32 6)
  %col = call i32 @moeq_emu_sreg(i32 0)
  %src.row = mul i32 %row, %cols
  %src = add i32 %src.row, %col
  %last = sub i32 %tokens, 1
  %dst.r = sub i32 %last, %row
  %dst.row = mul i32 %dst.r, %cols
  %dst = add i32 %dst.row, %col
  %src.64 = zext i32 %src to i64
  %dst.64 = zext i32 %dst to i64
  %from = getelementptr i16, ptr %x, i64 %src.64
  %to = getelementptr i16, ptr %y, i64 %dst.64
  %value = load i16, ptr %from
  store i16 %value, ptr %to
  ret void
}
