#!/usr/bin/env bash
# Colour profiles and metadata through the restore commands, read back by
# exiftool (libimage-exiftool-perl), an independent reader: EXIF date and
# camera, XMP and IPTC in every output format that can hold them, the
# orientation reset, the size updated, the thumbnail dropped, the provenance
# (with the weights' SHA-256 checked against sha256sum), the sRGB or kept
# profile, --strip-metadata, the once-per-run note on dropped parts, folder
# batches keeping each input's format, bad profiles and EXIF refused with
# nothing written. Fixtures: tests/data/meta (make_meta_fixtures.sh).
# Usage: test_cli_metadata.sh path/to/diffrestore path/to/make_tiny_weights SOURCE_DIR
set -u
BIN="$1"
MK="$2"
SRC="$3"
F="$SRC/tests/data/meta"
. "$(dirname "$0")/lib.sh"
tmp_make
cli_clean_env
if ! command -v exiftool >/dev/null; then
  echo "test_cli_metadata: exiftool not found: apt-get install libimage-exiftool-perl (scripts/test.sh installs it as root)" >&2
  exit 1
fi
# tag FILE TAG WANT description: exiftool's value of TAG (-s3: the value only) is WANT
tag() {
  local got
  got=$(exiftool -s3 -"$2" "$1" 2>&1)
  if [ "$got" = "$3" ]; then ok; else bad "$4: $1 $2 is '$got', want '$3'"; fi
}
notag() { # notag FILE GROUP description: exiftool finds no tag of GROUP (e.g. EXIF:All)
  local got
  got=$(exiftool -s -"$2" "$1" 2>&1)
  if [ -z "$got" ]; then ok; else bad "$3: $1 has $2: $(echo "$got" | head -3)"; fi
}
W="$TMP/w"
mkdir -p "$W"
for m in colorize superres; do "$MK" "$m" "$W/$m.safetensors" || exit 1; done
WSHA=$(sha256sum "$W/colorize.safetensors" | cut -d' ' -f1)
S=(--steps 2 -q --seed 5)
before=$(cat "$F"/* | md5sum)

# ---- meta.jpg (Adobe RGB, EXIF with orientation 6 and a thumbnail, XMP, IPTC) into each format
for ext in jpg png tif webp; do
  o="$TMP/c.$ext"
  expect 0 "colorize meta.jpg -> .$ext" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$F/meta.jpg" -o "$o"
  tag "$o" XMP-dc:Title "Harbour at dawn" "XMP title in .$ext"
  tag "$o" XMP-dc:Creator "A. Archivist" "XMP creator in .$ext"
  tag "$o" IFD0:Make DiffCam "EXIF camera make in .$ext"
  tag "$o" IFD0:Model "Test Model 1" "EXIF camera model in .$ext"
  tag "$o" XMP-diffrestore:Tool "diffrestore 0.1.0" "provenance tool in .$ext"
  tag "$o" XMP-diffrestore:Mode colorize "provenance mode in .$ext"
  tag "$o" XMP-diffrestore:WeightsSHA256 "$WSHA" "provenance weights hash (sha256sum) in .$ext"
  tag "$o" XMP-diffrestore:Sampler ddim "provenance sampler in .$ext"
  tag "$o" XMP-diffrestore:Steps 2 "provenance steps in .$ext"
  tag "$o" XMP-diffrestore:Seed 5 "provenance seed in .$ext"
  tag "$o" ICC_Profile:ProfileDescription "sRGB built-in" "sRGB profile embedded in .$ext"
  case $ext in
  jpg | tif)
    tag "$o" IPTC:Caption-Abstract "Boats in the harbour" "IPTC caption in .$ext"
    tag "$o" IPTC:By-line "A. Archivist" "IPTC by-line in .$ext" ;;
  *) notag "$o" IPTC:All "no IPTC in .$ext" ;;
  esac
  tag "$o" ExifIFD:DateTimeOriginal "2001:02:03 04:05:06" "EXIF capture date in .$ext"
  case $ext in
  tif)
    tag "$o" "IFD0:Orientation#" 1 "TIFF written upright"
    tag "$o" ExifIFD:ExifVersion 0232 "TIFF EXIF directory has its version" ;;
  *)
    tag "$o" "IFD0:Orientation#" 1 "EXIF orientation reset to 1 in .$ext"
    tag "$o" "ExifIFD:ExifImageWidth" 16 "EXIF width updated (upright) in .$ext"
    tag "$o" "ExifIFD:ExifImageHeight" 24 "EXIF height updated (upright) in .$ext"
    notag "$o" IFD1:All "thumbnail dropped in .$ext" ;;
  esac
done
# the dropped parts are named once; nothing is said where everything fits
expect 0 "batch of two JPEGs into PNG" "$BIN" colorize --steps 2 --seed 5 -w "$W/colorize.safetensors" --format png "$F/meta.jpg" "$F/adobe.jpg" -o "$TMP/pngs"
n=$(grep -c "IPTC of the inputs dropped from the PNG outputs (the format has no place for it)" "$TMP/err")
if [ "$n" = 1 ]; then ok; else bad "the dropped IPTC is reported once per run, not $n times: $(cat "$TMP/err")"; fi
expect 0 "colorize to JPEG" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" "$F/meta.jpg" -o "$TMP/quiet.jpg"
lacks "$TMP/err" "dropped" "nothing reported when the format holds everything"
lacks "$TMP/err" "note:" "no note at all for a JPEG output"
expect 0 "colorize to TIFF (not quiet)" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" "$F/meta.jpg" -o "$TMP/loud.tif"
contains "$TMP/err" "TIFF outputs keep only the EXIF's text fields" "the partial EXIF of TIFF is said"

# an XMP too large for a JPEG segment: dropped from the JPEG with a note, the
# provenance still written (in a packet of its own); a PNG keeps it
cp "$F/meta.png" "$TMP/bigxmp.png"
exiftool -q -overwrite_original -XMP-dc:Description="$(head -c 70000 /dev/zero | tr '\0' x)" "$TMP/bigxmp.png"
expect 0 "a 70 KB XMP into JPEG" "$BIN" colorize --steps 2 -w "$W/colorize.safetensors" "$TMP/bigxmp.png" -o "$TMP/bigxmp.jpg"
contains "$TMP/err" "XMP of the inputs dropped from the JPEG outputs (too large for a JPEG marker segment)" "oversized XMP reported"
tag "$TMP/bigxmp.jpg" XMP-diffrestore:Mode colorize "provenance kept without the oversized XMP"
notag "$TMP/bigxmp.jpg" XMP-dc:Title "the oversized XMP left out of the JPEG"
tag "$TMP/bigxmp.jpg" IFD0:Make DiffCam "the EXIF still carried"
expect 0 "a 70 KB XMP into PNG" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/bigxmp.png" -o "$TMP/bigxmp_out.png"
tag "$TMP/bigxmp_out.png" XMP-dc:Title "Harbour at dawn" "a PNG holds the large XMP"

# restoring a restored photo: one provenance, the latest (exiftool would warn of duplicates)
expect 0 "superres of a colorized output" "$BIN" superres "${S[@]}" -w "$W/superres.safetensors" --scale 2 "$TMP/c.png" -o "$TMP/twice.png"
tag "$TMP/twice.png" XMP-diffrestore:Mode superres "the second restoration's provenance"
n=$(exiftool -a -s3 -XMP-diffrestore:Mode "$TMP/twice.png" | wc -l)
if [ "$n" = 1 ]; then ok; else bad "one provenance after two restorations, not $n"; fi
tag "$TMP/twice.png" XMP-dc:Title "Harbour at dawn" "the original XMP still there"
exiftool -validate -warning -a "$TMP/twice.png" >"$TMP/val" 2>&1
lacks "$TMP/val" "Duplicate" "exiftool finds no duplicate XMP property"

# superres: the size in the EXIF is the output's
expect 0 "superres x2" "$BIN" superres "${S[@]}" -w "$W/superres.safetensors" --scale 2 "$F/meta.jpg" -o "$TMP/s.jpg"
tag "$TMP/s.jpg" "ExifIFD:ExifImageWidth" 32 "superres: EXIF width is the output's"
tag "$TMP/s.jpg" "ExifIFD:ExifImageHeight" 48 "superres: EXIF height is the output's"
tag "$TMP/s.jpg" XMP-diffrestore:Mode superres "provenance mode superres"

# ---- other input formats carry theirs (TIFF: XMP and IPTC; PNG/WebP: EXIF and XMP)
expect 0 "colorize meta.tif -> .jpg" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$F/meta.tif" -o "$TMP/t.jpg"
tag "$TMP/t.jpg" IPTC:Caption-Abstract "Boats in the harbour" "TIFF input's IPTC into JPEG"
tag "$TMP/t.jpg" XMP-dc:Title "Harbour at dawn" "TIFF input's XMP into JPEG"
tag "$TMP/t.jpg" IFD0:Make DiffCam "TIFF input's camera make into JPEG"
tag "$TMP/t.jpg" ExifIFD:DateTimeOriginal "2001:02:03 04:05:06" "TIFF input's capture date into JPEG"
expect 0 "TIFF -> TIFF -> JPEG" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/c.tif" -o "$TMP/tt.jpg"
tag "$TMP/tt.jpg" ExifIFD:DateTimeOriginal "2001:02:03 04:05:06" "the capture date survives a TIFF written by us"
for in in meta.png meta.webp; do
  expect 0 "colorize $in -> .jpg" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$F/$in" -o "$TMP/$in.jpg"
  tag "$TMP/$in.jpg" ExifIFD:DateTimeOriginal "2001:02:03 04:05:06" "$in's EXIF into JPEG"
  tag "$TMP/$in.jpg" XMP-dc:Title "Harbour at dawn" "$in's XMP into JPEG"
done

# ---- --keep-profile: back to the input's profile, which is embedded
expect 0 "--keep-profile" "$BIN" colorize "${S[@]}" --keep-profile -w "$W/colorize.safetensors" "$F/meta.jpg" -o "$TMP/k.png"
tag "$TMP/k.png" ICC_Profile:ProfileDescription "Compatible with Adobe RGB (1998)" "--keep-profile embeds the input's profile"
expect 0 "info on the kept-profile output" "$BIN" info "$TMP/k.png"
contains "$TMP/out" "Compatible with Adobe RGB (1998)" "info names the profile"
# a gray profile: kept on a gray output, impossible on a gray WebP (stored as RGB) or a colour output
mkdir -p "$TMP/iw"
"$MK" inpaint "$TMP/iw/inpaint.safetensors" || exit 1
expect 0 "gray PNG, --keep-profile" "$BIN" inpaint "${S[@]}" --keep-profile -w "$TMP/iw/inpaint.safetensors" --box 2,2,4,4 "$F/gray.png" -o "$TMP/g.png"
tag "$TMP/g.png" ICC_Profile:ProfileDescription "Gray" "a gray output keeps the gray profile"
expect 0 "gray WebP, --keep-profile" "$BIN" inpaint --steps 2 --keep-profile -w "$TMP/iw/inpaint.safetensors" --box 2,2,4,4 "$F/gray.png" -o "$TMP/g.webp"
contains "$TMP/err" "--keep-profile: a gray profile cannot describe" "the impossible --keep-profile is said"
notag "$TMP/g.webp" ICC_Profile:All "a gray WebP gets no gray profile"
expect 0 "gray input colorized, --keep-profile" "$BIN" colorize --steps 2 --keep-profile -w "$W/colorize.safetensors" "$F/gray.png" -o "$TMP/gc.png"
contains "$TMP/err" "--keep-profile: a gray profile cannot describe" "colour output of a gray profile is said"
tag "$TMP/gc.png" ICC_Profile:ProfileDescription "sRGB built-in" "then written in sRGB, with the sRGB profile"
# no profile in, none out
expect 0 "no profile in" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/c.png" -o "$TMP/noprof.png" --strip-metadata
expect 0 "an sRGB-less input" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/noprof.png" -o "$TMP/noprof2.png"
notag "$TMP/noprof2.png" ICC_Profile:All "no profile written for an input without one"

# ---- --strip-metadata: none of it
for ext in jpg png tif webp; do
  o="$TMP/strip.$ext"
  expect 0 "--strip-metadata .$ext" "$BIN" colorize "${S[@]}" --strip-metadata -w "$W/colorize.safetensors" "$F/meta.jpg" -o "$o"
  # (a TIFF's own IFD0 is exiftool's EXIF group: its EXIF sub-IFD is checked instead)
  exif=EXIF:All
  [ "$ext" = tif ] && exif=ExifIFD:All
  for g in $exif XMP:All IPTC:All ICC_Profile:All; do notag "$o" "$g" "--strip-metadata: no $g in .$ext"; done
  notag "$o" IFD0:Make "--strip-metadata: no camera make in .$ext"
done

# ---- info reports the profile and the metadata
expect 0 "info meta.jpg" "$BIN" info "$F/meta.jpg"
contains "$TMP/out" 'ICC profile: "Compatible with Adobe RGB (1998)", 580 bytes (converted to sRGB on load)' "info: the profile"
contains "$TMP/out" "EXIF 982 bytes, XMP" "info: EXIF and XMP"
contains "$TMP/out" "IPTC 61 bytes" "info: IPTC"
expect 0 "info without a profile" "$BIN" info "$TMP/strip.png"
contains "$TMP/out" "ICC profile: none (sRGB assumed)" "info: no profile"
contains "$TMP/out" "metadata: none" "info: no metadata"

# ---- a folder keeps each input's format unless --format says otherwise
mkdir -p "$TMP/in"
cp "$F/meta.jpg" "$F/meta.tif" "$F/meta.webp" "$F/meta.png" "$TMP/in/"
expect 0 "batch keeps formats" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$TMP/in" -o "$TMP/keep"
for f in meta.jpg meta.tif meta.webp meta.png; do
  exists "$TMP/keep/$f" "batch output $f in its input's format"
done
expect 0 "info on the batch outputs" "$BIN" info "$TMP/keep/meta.tif" "$TMP/keep/meta.webp"
contains "$TMP/out" "meta.tif: TIFF" "a TIFF input gives a TIFF"
contains "$TMP/out" "meta.webp: WebP" "a WebP input gives a WebP"

# ---- bad profiles and EXIF: exit 1, the file named, nothing written
for b in bad_icc.jpg huge_icc.png exif_loop.jpg; do
  expect 1 "$b refused" "$BIN" colorize "${S[@]}" -w "$W/colorize.safetensors" "$F/$b" -o "$TMP/bad_$b.png"
  contains "$TMP/err" "$b" "$b named in the error"
  absent "$TMP/bad_$b.png" "nothing written for $b"
done
contains "$TMP/err" "invalid EXIF" "the looping EXIF is called invalid"
contains "$TMP/err" "--strip-metadata" "the EXIF error hints at --strip-metadata"
expect 0 "exif_loop.jpg with --strip-metadata" "$BIN" colorize "${S[@]}" --strip-metadata -w "$W/colorize.safetensors" "$F/exif_loop.jpg" -o "$TMP/loop_ok.png"
expect 1 "bad_icc.jpg even with --strip-metadata" "$BIN" colorize "${S[@]}" --strip-metadata -w "$W/colorize.safetensors" "$F/bad_icc.jpg" -o "$TMP/bad2.png"
absent "$TMP/bad2.png" "nothing written for a bad profile"
no_temp_files() { if [ -z "$(find "$1" -name '.*.tmp*' 2>/dev/null)" ]; then ok; else bad "$2: temp files left"; fi; }
no_temp_files "$TMP" "after the refused inputs"

after=$(cat "$F"/* | md5sum)
if [ "$before" = "$after" ]; then ok; else bad "the fixtures were changed"; fi
finish test_cli_metadata
