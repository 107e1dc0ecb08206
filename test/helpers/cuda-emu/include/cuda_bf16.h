// empty: emu.h provides bf16
