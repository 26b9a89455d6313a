#include "textflag.h"

// func dotQ16U8AVX2(q *int16, c *uint8, n int) int32
// Σ q[i]*c[i] for n a multiple of 16: codes are zero-extended to int16 and
// multiplied pairwise into int32 lanes (VPMADDWD), which cannot saturate.
TEXT ·dotQ16U8AVX2(SB), NOSPLIT, $0-28
	MOVQ q+0(FP), SI
	MOVQ c+8(FP), DI
	MOVQ n+16(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3

loop64:
	CMPQ CX, $64
	JL   loop16
	VPMOVZXBW (DI), Y4
	VPMOVZXBW 16(DI), Y5
	VPMOVZXBW 32(DI), Y6
	VPMOVZXBW 48(DI), Y7
	VPMADDWD  (SI), Y4, Y4
	VPMADDWD  32(SI), Y5, Y5
	VPMADDWD  64(SI), Y6, Y6
	VPMADDWD  96(SI), Y7, Y7
	VPADDD    Y4, Y0, Y0
	VPADDD    Y5, Y1, Y1
	VPADDD    Y6, Y2, Y2
	VPADDD    Y7, Y3, Y3
	ADDQ      $64, DI
	ADDQ      $128, SI
	SUBQ      $64, CX
	JMP       loop64

loop16:
	CMPQ CX, $16
	JL   done
	VPMOVZXBW (DI), Y4
	VPMADDWD  (SI), Y4, Y4
	VPADDD    Y4, Y0, Y0
	ADDQ      $16, DI
	ADDQ      $32, SI
	SUBQ      $16, CX
	JMP       loop16

done:
	VPADDD       Y1, Y0, Y0
	VPADDD       Y3, Y2, Y2
	VPADDD       Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0x4E, X0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0xB1, X0, X1
	VPADDD       X1, X0, X0
	VMOVD        X0, AX
	VZEROUPPER
	MOVL         AX, ret+24(FP)
	RET

// func decodeU8AVX2(dst *float32, c *uint8, lo, st *float32, n int)
// dst[i] = lo[i] + st[i]*float32(c[i]) for n a multiple of 8.
TEXT ·decodeU8AVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ c+8(FP), SI
	MOVQ lo+16(FP), R8
	MOVQ st+24(FP), R9
	MOVQ n+32(FP), CX

dloop32:
	CMPQ CX, $32
	JL   dloop8
	VPMOVZXBD   (SI), Y0
	VPMOVZXBD   8(SI), Y1
	VPMOVZXBD   16(SI), Y2
	VPMOVZXBD   24(SI), Y3
	VCVTDQ2PS   Y0, Y0
	VCVTDQ2PS   Y1, Y1
	VCVTDQ2PS   Y2, Y2
	VCVTDQ2PS   Y3, Y3
	VMOVUPS     (R9), Y4
	VMOVUPS     32(R9), Y5
	VMOVUPS     64(R9), Y6
	VMOVUPS     96(R9), Y7
	VFMADD213PS (R8), Y4, Y0
	VFMADD213PS 32(R8), Y5, Y1
	VFMADD213PS 64(R8), Y6, Y2
	VFMADD213PS 96(R8), Y7, Y3
	VMOVUPS     Y0, (DI)
	VMOVUPS     Y1, 32(DI)
	VMOVUPS     Y2, 64(DI)
	VMOVUPS     Y3, 96(DI)
	ADDQ        $32, SI
	ADDQ        $128, DI
	ADDQ        $128, R8
	ADDQ        $128, R9
	SUBQ        $32, CX
	JMP         dloop32

dloop8:
	CMPQ CX, $8
	JL   ddone
	VPMOVZXBD   (SI), Y0
	VCVTDQ2PS   Y0, Y0
	VMOVUPS     (R9), Y4
	VFMADD213PS (R8), Y4, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        $8, SI
	ADDQ        $32, DI
	ADDQ        $32, R8
	ADDQ        $32, R9
	SUBQ        $8, CX
	JMP         dloop8

ddone:
	VZEROUPPER
	RET

// func dotF32U8AVX2(w *float32, c *uint8, n int) float32
// Σ w[i]*float32(c[i]) for n a multiple of 8.
TEXT ·dotF32U8AVX2(SB), NOSPLIT, $0-28
	MOVQ   w+0(FP), SI
	MOVQ   c+8(FP), DI
	MOVQ   n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

floop32:
	CMPQ CX, $32
	JL   floop8
	VPMOVZXBD   (DI), Y4
	VPMOVZXBD   8(DI), Y5
	VPMOVZXBD   16(DI), Y6
	VPMOVZXBD   24(DI), Y7
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y5, Y5
	VCVTDQ2PS   Y6, Y6
	VCVTDQ2PS   Y7, Y7
	VFMADD231PS (SI), Y4, Y0
	VFMADD231PS 32(SI), Y5, Y1
	VFMADD231PS 64(SI), Y6, Y2
	VFMADD231PS 96(SI), Y7, Y3
	ADDQ        $32, DI
	ADDQ        $128, SI
	SUBQ        $32, CX
	JMP         floop32

floop8:
	CMPQ CX, $8
	JL   fdone
	VPMOVZXBD   (DI), Y4
	VCVTDQ2PS   Y4, Y4
	VFMADD231PS (SI), Y4, Y0
	ADDQ        $8, DI
	ADDQ        $32, SI
	SUBQ        $8, CX
	JMP         floop8

fdone:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0x4E, X0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0xB1, X0, X1
	VADDPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func prefetchBytes(p *uint8, n int)
// Hints the n bytes from p into the caches, one PREFETCHT0 per 64-byte line.
TEXT ·prefetchBytes(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	ADDQ SI, CX

ploop:
	PREFETCHT0 (SI)
	ADDQ       $64, SI
	CMPQ       SI, CX
	JL         ploop
	RET

// func quantizeI16AVX2(dst *int16, w *float32, k float32, n int)
// dst[i] = round(w[i]*k) (to nearest even, saturating to int16) for n a multiple of 16.
TEXT ·quantizeI16AVX2(SB), NOSPLIT, $0-32
	MOVQ         dst+0(FP), DI
	MOVQ         w+8(FP), SI
	VBROADCASTSS k+16(FP), Y3
	MOVQ         n+24(FP), CX

qloop:
	CMPQ      CX, $16
	JL        qdone
	VMULPS    (SI), Y3, Y0
	VMULPS    32(SI), Y3, Y1
	VCVTPS2DQ Y0, Y0
	VCVTPS2DQ Y1, Y1
	VPACKSSDW Y1, Y0, Y2
	VPERMQ    $0xD8, Y2, Y2
	VMOVDQU   Y2, (DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	SUBQ      $16, CX
	JMP       qloop

qdone:
	VZEROUPPER
	RET
