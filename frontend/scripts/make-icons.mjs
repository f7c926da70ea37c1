// Draws AnyCode's app icons (the PWA's and the home screen's) as PNG files in
// public/, with no dependency: the logo is a rounded square with a prompt `>_`,
// rasterised with 4×4 supersampling and written with Node's zlib.
//
//   node scripts/make-icons.mjs
//
// The PNGs are committed; run this again only when the logo changes.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'public');
const PURPLE = [0x7c, 0x5c, 0xff];
const BG = [0x0d, 0x11, 0x17];

// The logo in a 32×32 box (the same as the favicon's SVG).
const SEGMENTS = [
  [9, 11, 15, 16],
  [15, 16, 9, 21],
  [17, 22, 24, 22],
];
const STROKE = 2.6;

function distToSegment(px, py, [x1, y1, x2, y2]) {
  const dx = x2 - x1;
  const dy = y2 - y1;
  const t = Math.max(0, Math.min(1, ((px - x1) * dx + (py - y1) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (x1 + t * dx), py - (y1 + t * dy));
}

function inRoundedSquare(x, y, size, r) {
  const cx = Math.min(Math.max(x, r), size - r);
  const cy = Math.min(Math.max(y, r), size - r);
  return Math.hypot(x - cx, y - cy) <= r;
}

/**
 * RGBA pixels of the icon at `size` px. `maskable`: full-bleed background and the
 * logo inside the central 60% (Android crops maskable icons to a circle or squircle).
 */
function draw(size, maskable) {
  const px = Buffer.alloc(size * size * 4);
  const N = 4;
  // Logo box in pixels: the whole icon, or its centre for maskable icons.
  const box = maskable ? size * 0.6 : size;
  const off = (size - box) / 2;
  const unit = box / 32;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      let a = 0;
      for (let sy = 0; sy < N; sy++) {
        for (let sx = 0; sx < N; sx++) {
          const X = x + (sx + 0.5) / N;
          const Y = y + (sy + 0.5) / N;
          // Logo coordinates (0..32).
          const lx = (X - off) / unit;
          const ly = (Y - off) / unit;
          const onStroke = SEGMENTS.some((s) => distToSegment(lx, ly, s) <= STROKE / 2);
          let c = null;
          if (maskable) {
            c = onStroke ? [255, 255, 255] : PURPLE;
          } else if (inRoundedSquare(X, Y, size, size * (7 / 32))) {
            c = onStroke ? [255, 255, 255] : PURPLE;
          }
          if (c) {
            r += c[0];
            g += c[1];
            b += c[2];
            a += 255;
          }
        }
      }
      const n = N * N;
      const i = (y * size + x) * 4;
      // Premultiplied sums → straight alpha.
      const alpha = a / n;
      px[i] = alpha ? Math.round((r / n) * (255 / alpha)) : BG[0];
      px[i + 1] = alpha ? Math.round((g / n) * (255 / alpha)) : BG[1];
      px[i + 2] = alpha ? Math.round((b / n) * (255 / alpha)) : BG[2];
      px[i + 3] = Math.round(alpha);
    }
  }
  return px;
}

const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

function png(size, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

fs.mkdirSync(OUT, { recursive: true });
for (const [name, size, maskable] of [
  ['icon-192.png', 192, false],
  ['icon-512.png', 512, false],
  ['icon-maskable-512.png', 512, true],
  ['apple-touch-icon.png', 180, true],
]) {
  fs.writeFileSync(path.join(OUT, name), png(size, draw(size, maskable)));
  console.log(`wrote public/${name}`);
}
