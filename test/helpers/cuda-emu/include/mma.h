// empty: emu.h provides WMMA
