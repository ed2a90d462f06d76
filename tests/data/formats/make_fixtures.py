#!/usr/bin/python3
"""Writes the small committed fixtures of tests/test_formats.c with tools
independent of diffrestore: Pillow (python3-pil), tiffcp (libtiff-tools) and
cwebp (webp). Not run by the tests; rerun by hand to regenerate.

Pattern: sample (x, y, c) of a W x H image is (x*37 + y*11 + c*50) % 256 at
8 bits and that * 257 + x at 16 bits (test_formats.c computes the same)."""
import os, struct, subprocess
from PIL import Image

W, H = 7, 5
def v8(x, y, c): return (x * 37 + y * 11 + c * 50) % 256
def v16(x, y, c): return (v8(x, y, c) * 257 + x) & 0xFFFF

def raw_tiff16(path, ch):
    """Uncompressed little-endian 16-bit TIFF, written by hand; tiffcp
    recompresses it."""
    data = b''.join(struct.pack('<H', v16(x, y, c)) for y in range(H) for x in range(W) for c in range(ch))
    photometric = 2 if ch >= 3 else 1
    entries = [(256, 3, 1, W), (257, 3, 1, H), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, photometric),
               (273, 4, 1, 0), (277, 3, 1, ch), (278, 3, 1, H), (279, 4, 1, len(data))]
    if ch in (2, 4): entries.append((338, 3, 1, 2))
    ifd_off = 8
    data_off = ifd_off + 2 + 12 * len(entries) + 4
    # BitsPerSample with ch values needs an array when ch > 1.
    extra = b''
    out = []
    for tag, typ, cnt, val in entries:
        if tag == 258 and ch == 2:
            cnt, val = 2, 16 | 16 << 16  # two SHORTs fit in the entry
        elif tag == 258 and ch > 2:
            cnt, val = ch, data_off + len(extra); extra += struct.pack('<' + 'H' * ch, *([16] * ch))
        out.append((tag, typ, cnt, val))
    pix_off = data_off + len(extra)
    out = [(t, ty, c, pix_off if t == 273 else v) for t, ty, c, v in out]
    b = b'II*\0' + struct.pack('<I', ifd_off) + struct.pack('<H', len(out))
    for t, ty, c, v in out:
        b += struct.pack('<HHI', t, ty, c) + (struct.pack('<HH', v, 0) if ty == 3 and c == 1 and v < 65536 else struct.pack('<I', v))
    b += struct.pack('<I', 0) + extra + data
    open(path, 'wb').write(b)

def img8(mode, ch):
    im = Image.new(mode, (W, H))
    for y in range(H):
        for x in range(W):
            p = tuple(v8(x, y, c) for c in range(ch))
            im.putpixel((x, y), p[0] if ch == 1 else p)
    return im

def run(*a): subprocess.run(a, check=True)

# TIFF: 16-bit through tiffcp (LZW, Deflate, PackBits, tiles), 8-bit by Pillow.
for ch, name in ((1, 'gray'), (2, 'graya'), (3, 'rgb'), (4, 'rgba')):
    raw_tiff16('/tmp/raw16.tif', ch)
    run('tiffcp', '-c', 'lzw', '/tmp/raw16.tif', f'{name}16_lzw.tif')
run('tiffcp', '-c', 'zip', '-t', '-w', '16', '-l', '16', f'rgb16_lzw.tif', 'rgb16_tiled_deflate.tif')
img8('RGB', 3).save('rgb8_packbits.tif', compression='packbits')
img8('RGBA', 4).save('rgba8_deflate.tif', compression='tiff_adobe_deflate')
img8('L', 1).save('gray8_none.tif')
img8('LA', 2).save('graya8_none.tif')
img8('RGB', 3).convert('P', palette=Image.ADAPTIVE, colors=256).save('palette8.tif')
img8('RGB', 3).resize((16, 16)).save('rgb8_jpeg.tif', compression='jpeg', quality=95)
# Two pages: only the first (the pattern) is read.
img8('RGB', 3).save('multipage.tif', save_all=True, append_images=[Image.new('RGB', (3, 3), (255, 0, 0))])
# WebP: lossless with alpha, and lossy.
img8('RGBA', 4).save('rgba8_lossless.webp', lossless=True)
img8('RGB', 3).save('rgb8_lossless.webp', lossless=True)
img8('RGB', 3).resize((32, 24)).save('rgb8_lossy.webp', quality=90)

# Orientation: an upright 7x5 RGB reference, and for each EXIF orientation the
# stored picture whose display (ImageOps.exif_transpose) is that reference.
up = img8('RGB', 3)
up.save('upright.png')
inverse = {1: None, 2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM,
           5: Image.TRANSPOSE, 6: Image.ROTATE_90, 7: Image.TRANSVERSE, 8: Image.ROTATE_270}
big = up.resize((W * 8, H * 8), Image.NEAREST)  # 8x8 blocks: JPEG-friendly
big.save('upright_big.png')
for o, t in inverse.items():
    ex = Image.Exif(); ex[0x0112] = o
    stored = up if t is None else up.transpose(t)
    stored.save(f'orient{o}.webp', lossless=True, exif=ex.tobytes())
    stored.save(f'orient{o}.tif', tiffinfo={0x0112: o})
    stored.save(f'orient{o}.png', exif=ex.tobytes())
    sb = big if t is None else big.transpose(t)
    sb.save(f'orient{o}.jpg', quality=100, subsampling=0, exif=ex.tobytes())
    # what an independent reader shows: Pillow's decode, turned upright
    from PIL import ImageOps
    ImageOps.exif_transpose(Image.open(f'orient{o}.jpg')).save(f'orient{o}_pil.png')
