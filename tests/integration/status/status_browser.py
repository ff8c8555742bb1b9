#!/usr/bin/python3
"""The status page in headless Chromium (Selenium, chromedriver).

Usage: status_browser.py BASE_URL OUT_DIR   (env: IMGTOOL, NBD_PORT, BOOTFLEET_STORE)

Against a bootsrv whose store has image lab (@1 active, @2 not) and client
pc01 with a session: the page lists pc01 and lab@1; a client connecting
over NBD (libnbd, kept open) appears as "up" without the page reloading;
`imgtool publish lab@2` changes the active version shown; the browser's
console has no errors. Saves OUT_DIR/status-page.png and console.log.
Exits non-zero naming what it waited for. Bounded: each wait is at most
20 s, the whole run well under a minute.
"""
import json
import os
import subprocess
import sys
import time

import nbd
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, out_dir = sys.argv[1], sys.argv[2]
os.makedirs(out_dir, exist_ok=True)


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(20)
handle = None


def wait_for(what, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # the table is being redrawn: try again
            last = e
        time.sleep(0.2)
    driver.save_screenshot(os.path.join(out_dir, "status-page-failed.png"))
    fail("waited 20 s for " + what + " (last: " + repr(last) + ")")


def row(session):
    rows = driver.find_elements(By.CSS_SELECTOR, '#clients tbody tr[data-session="%s"]' % session)
    return rows[0] if rows else None


def active_shown():
    return driver.find_element(By.CSS_SELECTOR, '#images tbody tr[data-image="lab"] td[data-field="active"]').text


try:
    driver.get(base + "/status")
    wait_for("pc01's row", lambda: row("lab/pc01"))
    if row("lab/pc01").find_elements(By.TAG_NAME, "td")[1].text != "52:54:00:00:00:01":
        fail("pc01's MAC is not shown")
    wait_for("lab@1 active", lambda: active_shown() == "@1")
    if row("lab/pc02"):
        fail("pc02 is shown before it connected")
    # A mark on the window: a reload would drop it.
    driver.execute_script("window.bootfleetMark = 42;")

    # A new client connects over NBD and stays connected.
    handle = nbd.NBD()
    handle.connect_uri("nbd://127.0.0.1:%s/lab/pc02" % os.environ["NBD_PORT"])
    handle.pwrite(b"\x05" * 65536, 0)
    handle.pread(65536, 1 << 20)
    wait_for("pc02 up", lambda: row("lab/pc02") is not None and row("lab/pc02").get_attribute("data-state") == "up")
    # name, MAC, image, follows, state, version, since, write cache, …
    cells = [td.text for td in row("lab/pc02").find_elements(By.TAG_NAME, "td")]
    if cells[5] != "lab@1" or cells[7] != "64 KiB":
        fail("pc02's version and write cache: " + repr(cells))

    # A publish (by imgtool, straight into the store) shows on its own.
    subprocess.run([os.environ["IMGTOOL"], "publish", "lab@2"], check=True, stdout=subprocess.DEVNULL)
    wait_for("lab@2 active", lambda: active_shown() == "@2")
    # pc02 keeps the version it booted.
    wait_for("pc02 still on lab@1", lambda: row("lab/pc02").find_elements(By.TAG_NAME, "td")[5].text == "lab@1")
    if driver.execute_script("return window.bootfleetMark;") != 42:
        fail("the page reloaded (the window's mark is gone)")
    if driver.find_element(By.ID, "problem").is_displayed():
        fail("the page shows a problem: " + driver.find_element(By.ID, "problem").text)
    health = driver.find_element(By.ID, "health").text
    if "nbd connections\n1" not in health:
        fail("the health cards do not show pc02's NBD connection: " + repr(health))
    events = driver.find_element(By.ID, "events").text
    if "root lab/pc01" not in events:
        fail("the events do not show pc01's root attach: " + events)
    time.sleep(2.5)  # one more poll: the rates have two samples
    driver.save_screenshot(os.path.join(out_dir, "status-page.png"))

    logs = driver.get_log("browser")
    with open(os.path.join(out_dir, "console.log"), "w") as f:
        json.dump(logs, f, indent=1)
    errors = [entry for entry in logs if entry.get("level") == "SEVERE"]
    if errors:
        fail("console errors: " + json.dumps(errors))
    print("ok: the page in Chromium")
finally:
    if handle is not None:
        handle.shutdown()
    driver.quit()
