// make_exif_fixture.mjs: writes a copy of a JPEG with an EXIF APP1 segment that holds only
// Orientation = N, inserted right after SOI (any APP1 Exif already there must have been stripped).
// scripts/make-goldens uses it to build the portrait fixture whose stored pixels are rotated, so the
// goldens also cover EXIF autorotation and right-hand padding of a portrait photo.
// Usage: node make_exif_fixture.mjs IN.jpg OUT.jpg ORIENTATION
import fs from 'node:fs';

const [input, output, orient] = process.argv.slice(2);
const o = Number(orient);
if (!input || !output || !(o >= 1 && o <= 8)) {
  process.stderr.write('usage: node make_exif_fixture.mjs IN.jpg OUT.jpg ORIENTATION(1..8)\n');
  process.exit(2);
}
const jpg = fs.readFileSync(input);
if (jpg[0] !== 0xff || jpg[1] !== 0xd8) throw new Error(`${input}: not a JPEG`);
// TIFF, big-endian: header (8) + IFD0 with one entry (2 + 12 + 4).
const tiff = Buffer.alloc(26);
tiff.write('MM', 0, 'latin1');
tiff.writeUInt16BE(42, 2);
tiff.writeUInt32BE(8, 4); // offset of IFD0
tiff.writeUInt16BE(1, 8); // one entry
tiff.writeUInt16BE(0x0112, 10); // Orientation
tiff.writeUInt16BE(3, 12); // SHORT
tiff.writeUInt32BE(1, 14); // count
tiff.writeUInt16BE(o, 18); // value, left-justified in the 4-byte field
tiff.writeUInt32BE(0, 22); // no next IFD
const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
const seg = Buffer.alloc(4);
seg.writeUInt16BE(0xffe1, 0);
seg.writeUInt16BE(payload.length + 2, 2);
fs.writeFileSync(output, Buffer.concat([jpg.subarray(0, 2), seg, payload, jpg.subarray(2)]));
