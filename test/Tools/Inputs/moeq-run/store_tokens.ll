; store_tokens(out: i32*, tokens: i32) in the emulation form of a kernel:
; void store_tokens_packed(void **args), args[i] pointing to parameter i.
define void @store_tokens_packed(ptr %args) {
entry:
  %out.slot = load ptr, ptr %args
  %out = load ptr, ptr %out.slot
  %tokens.p = getelementptr ptr, ptr %args, i64 1
  %tokens.slot = load ptr, ptr %tokens.p
  %tokens = load i32, ptr %tokens.slot
  store i32 %tokens, ptr %out
  ret void
}
