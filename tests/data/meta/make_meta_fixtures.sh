#!/usr/bin/env bash
# Writes the committed fixtures of tests/test_cli_metadata.sh and
# tests/test_formats.c (colour and metadata) with tools independent of
# diffrestore: Pillow with ImageCms (python3-pil), exiftool
# (libimage-exiftool-perl) and the Adobe RGB (1998) compatible profile of
# icc-profiles-free. Not run by the tests; rerun by hand to regenerate.
#
#   adobe.jpg            16x8 saturated patches, Adobe RGB profile embedded (quality 95)
#   adobe_srgb_ref.png   adobe.jpg decoded by Pillow and converted to sRGB by
#                        ImageCms (Little CMS through Pillow, perceptual intent):
#                        the reference diffrestore's conversion is checked against
#   adobe16.png          adobe.jpg's pixels (as Pillow decodes them) times 257 as
#                        16-bit RGB with the Adobe RGB profile (iCCP); Pillow has
#                        no 16-bit RGB mode, so its conversion is checked against
#                        the 8-bit reference
#   meta.jpg             EXIF (Make, Model, DateTimeOriginal, Orientation 6, a
#                        thumbnail), XMP (dc:title, dc:creator) and IPTC
#                        (Caption-Abstract, By-line, Keywords), written by exiftool
#   meta.tif, meta.png, meta.webp  the same metadata in the other formats (PNG and
#                        WebP: no IPTC), each with the Adobe RGB profile
#   gray.png             8-bit gray with the gray profile of icc-profiles-free (Gray.icc)
#   bad_icc.jpg          an ICC_PROFILE marker holding a profile whose tag table
#                        points past its end (Little CMS refuses it)
#   huge_icc.png         an iCCP chunk that inflates to 5 MB (over the 4 MB limit)
#   exif_loop.jpg        EXIF whose ExifIFD pointer points back at IFD0 (a loop)
set -euo pipefail
cd "$(dirname "$0")"
ICC=/usr/share/color/icc/compatibleWithAdobeRGB1998.icc
PY=/usr/bin/python3
$PY - "$ICC" <<'PYEOF'
import io, struct, sys
from PIL import Image, ImageCms
icc = open(sys.argv[1], 'rb').read()
W, H = 16, 8
cols = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
        (128, 64, 32), (30, 160, 90), (200, 200, 200), (10, 10, 10), (90, 30, 200), (250, 128, 0),
        (0, 128, 255), (255, 255, 255), (64, 64, 64), (180, 40, 120)]
im = Image.new('RGB', (W, H))
for y in range(H):
    for x in range(W):
        r, g, b = cols[(x // 4) + 4 * (y // 4) * 2 % 16]
        im.putpixel((x, y), (r, (g + 8 * y) % 256, b))
im.save('adobe.jpg', quality=95, subsampling=0, icc_profile=icc)
dec = Image.open('adobe.jpg')
dec.load()
src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
dst = ImageCms.createProfile('sRGB')
ref = ImageCms.profileToProfile(dec, src, dst, renderingIntent=0, outputMode='RGB')
ref.info.pop('icc_profile', None)
ref.save('adobe_srgb_ref.png')  # no profile: sRGB by convention
# 16-bit PNG with the profile: the same pattern scaled to 16 bits (PNG written by hand
# through Pillow's I;16 is gray only, so write raw RGB16 with zlib)
import zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
raw = b''.join(b'\0' + b''.join(struct.pack('>HHH', *(v * 257 for v in dec.getpixel((x, y)))) for x in range(W)) for y in range(H))
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', W, H, 16, 2, 0, 0, 0))
png += chunk(b'iCCP', b'Adobe RGB\0\0' + zlib.compress(icc))
png += chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
open('adobe16.png', 'wb').write(png)
# the metadata carriers: a plain picture, made in each format
pic = Image.new('RGB', (24, 16))
for y in range(16):
    for x in range(24):
        pic.putpixel((x, y), ((x * 10) % 256, (y * 15) % 256, 128))
pic.save('meta.jpg', quality=95, icc_profile=icc)
pic.save('meta.png', icc_profile=icc)
pic.save('meta.tif', compression='tiff_deflate', icc_profile=icc)
pic.save('meta.webp', lossless=True, icc_profile=icc)
pic.resize((8, 6)).save('thumb.jpg', quality=80)
# gray with a gray profile
gimg = Image.new('L', (16, 16))
for y in range(16):
    for x in range(16):
        gimg.putpixel((x, y), (x * 16 + y) % 256)
gimg.save('gray.png', icc_profile=open('/usr/share/color/icc/Gray.icc', 'rb').read())
# a profile whose tag table points past its end
bad = bytearray(icc)
count = struct.unpack('>I', bad[128:132])[0]
struct.pack_into('>I', bad, 132 + 4, len(bad) * 16)  # first tag's offset far outside
pic.save('bad_icc.jpg', quality=90, icc_profile=bytes(bad))
# an iCCP that inflates to 5 MB: a valid header, then zeros
huge = bytearray(5 * 1024 * 1024)
huge[:128] = icc[:128]
struct.pack_into('>I', huge, 0, len(huge))
Image.new('RGB', (4, 4), (1, 2, 3)).save('huge_icc.png', icc_profile=bytes(huge))
# EXIF: IFD0 with Orientation 1 and an ExifIFD pointer back at IFD0 itself
ifd = struct.pack('<H', 2) + struct.pack('<HHII', 0x0112, 3, 1, 1) + struct.pack('<HHII', 0x8769, 4, 1, 8) + struct.pack('<I', 0)
exif = b'Exif\0\0' + b'II*\0' + struct.pack('<I', 8) + ifd
Image.new('RGB', (4, 4), (9, 9, 9)).save('exif_loop.jpg', quality=90, exif=exif)
PYEOF
# EXIF, XMP and IPTC by exiftool (IPTC where the format has a standard place)
common=(-q -overwrite_original -Make=DiffCam -Model="Test Model 1" "-DateTimeOriginal=2001:02:03 04:05:06"
        -XMP-dc:Title="Harbour at dawn" -XMP-dc:Creator="A. Archivist")
iptc=(-IPTC:Caption-Abstract="Boats in the harbour" -IPTC:By-line="A. Archivist" -IPTC:Keywords=harbour)
exiftool "${common[@]}" "${iptc[@]}" -Orientation#=6 "-ThumbnailImage<=thumb.jpg" meta.jpg
exiftool "${common[@]}" "${iptc[@]}" meta.tif
exiftool "${common[@]}" meta.png meta.webp
rm -f thumb.jpg
ls -l
