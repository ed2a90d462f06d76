#!/usr/bin/env node
// The README's screenshot of the serve page: the shipped inpaint weights, a
// sample photo, its damage painted on the page's mask (the sample mask drawn
// in as a user's brush would), restored, then photographed with the result.
//
//   node tests/browser/screenshot.js DIFFRESTORE WEIGHTS_DIR PHOTO MASK OUT.png [CHROMIUM]
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const puppeteer = require('puppeteer-core');

const [bin, wdir, photo, mask, out, chromiumArg] = process.argv.slice(2);
if (!out) {
  console.error('usage: screenshot.js DIFFRESTORE WEIGHTS_DIR PHOTO MASK OUT.png [CHROMIUM]');
  process.exit(2);
}

async function main() {
  const server = spawn(bin, ['serve', '--port', '0', '--weights-dir', wdir, '-q'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    server.stdout.on('data', (d) => { buf += d; const m = /listening on (\S+)/.exec(buf); if (m) resolve(m[1]); });
    server.on('exit', (c) => reject(new Error('serve exited with ' + c)));
  });
  const browser = await puppeteer.launch({ executablePath: chromiumArg || '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 720, deviceScaleFactor: 1 });
    await page.goto(url, { waitUntil: 'networkidle0' });
    await page.waitForFunction(() => document.getElementById('models-info').textContent.includes('inpaint'));
    await (await page.$('#file')).uploadFile(photo);
    await page.waitForSelector('#editor:not([hidden])');
    const maskUrl = 'data:image/png;base64,' + fs.readFileSync(mask).toString('base64');
    await page.evaluate(async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      const m = document.getElementById('mask');
      const t = document.createElement('canvas');
      t.width = m.width; t.height = m.height;
      const tc = t.getContext('2d');
      tc.drawImage(img, 0, 0);
      const d = tc.getImageData(0, 0, t.width, t.height);
      for (let i = 0; i < d.data.length; i += 4) { // white (hole) -> the brush's red, the rest clear
        const hole = d.data[i] > 127;
        d.data[i] = 255; d.data[i + 1] = 0; d.data[i + 2] = 0; d.data[i + 3] = hole ? 255 : 0;
      }
      m.getContext('2d').putImageData(d, 0, 0);
      state.painted = 1; // eslint-disable-line no-undef
      maskChanged(); // eslint-disable-line no-undef
    }, maskUrl);
    await page.$eval('#seed', (e) => { e.value = '0'; });
    await page.click('#restore');
    await page.waitForSelector('#compare:not([hidden])', { timeout: 600000 });
    await page.$eval('#split', (e) => { e.value = '100'; e.dispatchEvent(new Event('input')); });
    await page.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
    await page.screenshot({ path: out });
  } finally {
    await browser.close();
    server.kill('SIGTERM');
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
