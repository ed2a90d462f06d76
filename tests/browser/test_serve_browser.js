#!/usr/bin/env node
// The serve page in a real browser: Debian's headless Chromium driven by
// puppeteer-core. It opens a test photo, paints a stroke, runs inpaint with the
// tiny test weights at 2 steps, waits for the result and checks it:
//   - the pixels outside the stroke are unchanged (against the mask the page
//     sent, with make_tiny_weights --compare, a C decoder independent of the page);
//   - the download has the input's size.
// It saves a screenshot of the page with its result under OUT.
//
//   node test_serve_browser.js DIFFRESTORE MAKE_TINY_WEIGHTS OUT [CHROMIUM]
'use strict';
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const [bin, mk, out, chromiumArg] = process.argv.slice(2);
if (!bin || !mk || !out) {
  console.error('usage: test_serve_browser.js DIFFRESTORE MAKE_TINY_WEIGHTS OUT [CHROMIUM]');
  process.exit(2);
}
const chromium = chromiumArg || process.env.CHROMIUM || '/usr/bin/chromium';
let failures = 0, passes = 0;
function check(cond, what) {
  if (cond) passes++;
  else { failures++; console.error('FAIL: ' + what); }
}

async function main() {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(path.join(out, 'w'), { recursive: true });
  fs.mkdirSync(path.join(out, 'downloads'), { recursive: true });
  execFileSync(mk, ['inpaint', path.join(out, 'w', 'inpaint.safetensors')]);
  const photo = path.join(out, 'photo.png');
  execFileSync(mk, ['--image', photo, '160', '120', '3', '8', '7']);

  const server = spawn(bin, ['serve', '--port', '0', '--weights-dir', path.join(out, 'w'), '-t', '2', '-q'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    server.stdout.on('data', (d) => {
      buf += d;
      const m = /listening on (\S+)/.exec(buf);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error('serve exited with ' + code)));
  });
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 860 });
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    let sent = null; // the job request the page sent
    page.on('request', (r) => {
      if (r.url().endsWith('/api/jobs') && r.method() === 'POST') sent = JSON.parse(r.postData());
    });
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: path.join(out, 'downloads') });

    await page.goto(url, { waitUntil: 'networkidle0' });
    await page.waitForFunction(() => document.getElementById('models-info').textContent.includes('inpaint'));
    const input = await page.$('#file');
    await input.uploadFile(photo);
    await page.waitForSelector('#editor:not([hidden])');
    check(await page.$eval('#restore', (b) => b.disabled), 'Restore is disabled before anything is painted');

    // one stroke across the middle of the photo, by mouse
    const box = await (await page.$('#mask')).boundingBox();
    await page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.5);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + box.width * (0.25 + 0.05 * i), box.y + box.height * 0.5);
    await page.mouse.up();
    check(!(await page.$eval('#restore', (b) => b.disabled)), 'Restore is enabled after a stroke');

    // the keyboard: tool and brush-size keys, then Restore pressed with Enter
    await page.keyboard.press('e');
    check(await page.$eval('#tool-eraser', (b) => b.getAttribute('aria-pressed')) === 'true', 'E picks the eraser');
    await page.keyboard.press('b');
    check(await page.$eval('#tool-brush', (b) => b.getAttribute('aria-pressed')) === 'true', 'B picks the brush');
    const size0 = +(await page.$eval('#brush-size', (e) => e.value));
    await page.keyboard.press(']');
    check(+(await page.$eval('#brush-size', (e) => e.value)) === size0 + 4, '] enlarges the brush');
    await page.keyboard.press('[');
    await page.click('#advanced > summary');
    await page.$eval('#steps', (e) => { e.value = '2'; });
    await page.$eval('#seed', (e) => { e.value = '5'; });
    await page.focus('#restore');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#compare:not([hidden])', { timeout: 120000 });
    const err = await page.$eval('#error', (e) => (e.hidden ? '' : e.textContent));
    check(err === '', 'no error shown: ' + err);
    check(sent && sent.mode === 'inpaint' && sent.steps === 2 && typeof sent.mask === 'string', 'the page sent an inpaint job with a mask');

    await page.screenshot({ path: path.join(out, 'serve_page.png'), fullPage: true });

    // the download
    await page.click('#download');
    let file = null;
    for (let i = 0; i < 200 && !file; i++) {
      const f = fs.readdirSync(path.join(out, 'downloads')).filter((n) => !n.endsWith('.crdownload'));
      if (f.length) file = path.join(out, 'downloads', f[0]);
      else await new Promise((r) => setTimeout(r, 100));
    }
    check(file !== null, 'the download arrived');
    if (file) {
      check(path.basename(file) === 'photo_inpaint.png', 'the download is named photo_inpaint.png: ' + path.basename(file));
      const size = execFileSync(mk, ['--size', file]).toString().trim();
      const want = execFileSync(mk, ['--size', photo]).toString().trim();
      check(size === want, `the download has the input's size: ${size} against ${want}`);
      if (sent && sent.mask) {
        const maskFile = path.join(out, 'sent_mask.png');
        fs.writeFileSync(maskFile, Buffer.from(sent.mask.replace(/^data:[^,]*,/, ''), 'base64'));
        const maxd = +execFileSync(mk, ['--compare', photo, file, maskFile]).toString().trim();
        check(maxd === 0, 'the pixels outside the stroke are unchanged (largest difference ' + maxd + ')');
        const changed = +execFileSync(mk, ['--compare', photo, file]).toString().trim();
        check(changed > 0, 'the stroke was filled (the result differs from the input inside it)');
      }
    }
    // a long restore, cancelled from the page: the server stops the job
    await page.$eval('#steps', (e) => { e.value = '1000'; });
    await page.click('#again');
    await page.waitForFunction(() => document.getElementById('progress-text').textContent.startsWith('Restoring'),
      { timeout: 120000 });
    await page.click('#cancel');
    await page.waitForFunction(() => document.getElementById('progress-text').textContent === 'Cancelled.');
    let st = null;
    for (let i = 0; i < 300; i++) {
      st = await page.evaluate(async () => (await fetch('/api/status')).json());
      if (st.running === 0 && st.cancelled === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    check(st && st.running === 0 && st.cancelled === 1 && st.done === 1, 'Cancel on the page stops the job: ' + JSON.stringify(st));
    check(!(await page.$eval('#restore', (b) => b.disabled)), 'Restore is enabled again after a cancel');

    // a phone's width: one column, nothing wider than the screen
    await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 1 });
    await new Promise((r) => setTimeout(r, 200));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, 'at 390 px nothing is wider than the screen (' + overflow + ' px over)');
    const oneColumn = await page.evaluate(() => {
      const a = document.querySelector('.controls').getBoundingClientRect();
      const b = document.querySelector('.views').getBoundingClientRect();
      return b.top >= a.bottom - 1;
    });
    check(oneColumn, 'at 390 px the photo comes below the controls');
    await page.screenshot({ path: path.join(out, 'serve_phone.png'), fullPage: true });
    check(consoleErrors.length === 0, 'no errors in the page console: ' + consoleErrors.join(' | '));
  } finally {
    await browser.close();
    server.kill('SIGTERM');
    const code = await new Promise((r) => server.on('exit', (c) => r(c)));
    check(code === 0, 'serve exits 0 on SIGTERM, got ' + code);
  }
}

main().then(() => {
  console.log(`test_serve_browser: ${passes} passed, ${failures} failed`);
  process.exit(failures || !passes ? 1 : 0);
}, (e) => {
  console.error('FAIL: ' + (e && e.stack || e));
  process.exit(1);
});
