#!/usr/bin/env python3
"""The webmail as its users and its attackers meet it, run on a client host.

  webmail.py browser --url URL --user ADDRESS --password PW --cafile PEM --shots DIR
                     [--open-token T --reply-token R]
      Debian's Chromium, headless, driven through Selenium: logs in; with --open-token,
      finds that message in the inbox, opens it, replies with R in the body (and the file
      of --attach FILE attached) and sends;
      with --vacation TEXT (or --vacation-off), sets the out-of-office reply in
      Settings; then logs out. The certificate is verified against the CA in PEM (an NSS database
      of its own, as Chromium reads trust from there). Screenshots go to DIR.

  webmail.py guess --url URL --user ADDRESS --attempts N [--family 4|6] [--pause S] [--inject ADDRESS...]
      A password guesser with no browser: fetches the login form and posts a wrong
      password, N times, each in a new session, until the server stops accepting
      connections, S seconds apart. With --inject, the guesser also tries to get
      other addresses banned: its user names carry "from <address> in session ..." as Roundcube writes it in
      its log line, and its requests name them in X-Forwarded-For and X-Real-IP.

Prints one JSON object.
"""

import argparse
import http.cookiejar
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request


def browser(args):
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    home = tempfile.mkdtemp(prefix="webmail-browser-")
    nssdb = os.path.join(home, ".pki", "nssdb")
    os.makedirs(nssdb)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "lab-acme-root", "-i", args.cafile],
                   check=True)
    os.environ["HOME"] = home
    os.makedirs(args.shots, exist_ok=True)

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={home}/profile", "--lang=en-US"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    # Generous: a refused login waits out Dovecot's delay, longer on a busy host.
    wait = WebDriverWait(driver, 60)
    answer = {"shots": []}

    def shot(name):
        path = os.path.join(args.shots, f"{name}.png")
        driver.save_screenshot(path)
        answer["shots"].append(path)

    def visible(selector):
        return [e for e in driver.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]

    def messages(pattern):
        """Roundcube's notices ({"cls", "text"}) whose class matches, read in one script:
        the page replaces these elements as it goes."""
        return driver.execute_script("""
            var pattern = new RegExp(arguments[0]);
            return Array.from(document.querySelectorAll('#messagestack > div'))
                .filter(function (e) { return pattern.test(e.className); })
                .map(function (e) { return {cls: e.className, text: e.innerText}; });
        """, pattern)

    try:
        driver.get(args.url)
        wait.until(EC.visibility_of_element_located((By.ID, "rcmloginuser")))
        answer["title"] = driver.title
        driver.find_element(By.ID, "rcmloginuser").send_keys(args.user)
        driver.find_element(By.ID, "rcmloginpwd").send_keys(args.password)
        driver.find_element(By.ID, "rcmloginsubmit").click()
        # A refused login stays on the login page with an error or warning in Roundcube's
        # message stack (read in one script: the page replaces these elements as it goes).
        def listed():
            return driver.execute_script(
                "var l = document.getElementById('messagelist'); return !!(l && l.offsetParent);")

        try:
            wait.until(lambda d: listed() or messages("error|warning"))
        except TimeoutException:
            pass
        refused = messages("error|warning")
        answer["error"] = refused[0]["text"] if refused else ""
        answer["error_class"] = refused[0]["cls"] if refused else ""
        answer["login"] = bool(visible("#messagelist")) and "_task=mail" in driver.current_url
        shot("after-login")
        if not answer["login"]:
            answer["login_form_shown"] = bool(visible("#rcmloginuser"))
            return answer

        if args.open_token:
            row_selector = "#messagelist tbody tr"
            deadline = time.time() + 60
            rows = []
            while time.time() < deadline:
                rows = [r for r in driver.find_elements(By.CSS_SELECTOR, row_selector) if args.open_token in r.text]
                if rows:
                    break
                time.sleep(3)
                driver.refresh()
                wait.until(EC.presence_of_element_located((By.ID, "messagelist")))
            answer["found"] = bool(rows)
            shot("inbox")
            if not rows:
                return answer
            link = rows[0].find_element(By.CSS_SELECTOR, "td.subject a")
            driver.get(link.get_attribute("href"))
            body = wait.until(EC.visibility_of_element_located((By.ID, "messagebody")))
            answer["body_shows_token"] = args.open_token in body.text
            shot("message")

            visible("a.reply")[0].click()
            compose = wait.until(EC.visibility_of_element_located((By.ID, "composebody")))
            answer["reply_to"] = [e.text for e in visible(".recipient-input .recipient")] or [
                e.get_attribute("value") for e in driver.find_elements(By.ID, "_to")]
            compose.send_keys(Keys.CONTROL, Keys.HOME)
            compose.send_keys(f"Reply {args.reply_token}\n")
            if args.attach:
                # Roundcube's upload field (hidden behind its Attach button) takes the
                # file; the upload goes through PHP's temporary folder to Roundcube's.
                driver.find_element(By.CSS_SELECTOR, "input[type=file][name='_attachments[]']").send_keys(args.attach)
                name = os.path.basename(args.attach)

                def uploaded(d):
                    # Roundcube replaces the list item when the upload ends.
                    try:
                        return any(name in e.text and "uploading" not in (e.get_attribute("class") or "")
                                   for e in d.find_elements(By.CSS_SELECTOR, "#attachment-list li"))
                    except StaleElementReferenceException:
                        return False
                try:
                    wait.until(uploaded)
                    answer["attached"] = True
                except TimeoutException:
                    errors = messages("error")
                    answer["attach_error"] = errors[0]["text"] if errors else ""
                    answer["attached"] = False
            shot("reply")
            visible("button.send, a.send, input.send")[0].click()
            try:
                wait.until(lambda d: "_action=compose" not in d.current_url or messages("confirmation"))
                confirmations = messages("confirmation")
                answer["sent_notice"] = confirmations[0]["text"] if confirmations else ""
                answer["sent"] = "_action=compose" not in driver.current_url or bool(confirmations)
            except TimeoutException:
                errors = messages("error")
                answer["sent_error"] = errors[0]["text"] if errors else ""
                answer["sent"] = False
            shot("sent")

        if args.vacation or args.vacation_off:
            # Settings > Out of Office: the managesieve plugin writes a Sieve script
            # through Dovecot's ManageSieve and activates it.
            driver.get(args.url + "?_task=settings&_action=plugin.managesieve-vacation")
            wait.until(EC.visibility_of_element_located((By.ID, "vacation_subject")))
            if args.vacation:
                for field, text in (("vacation_subject", f"Away {args.vacation}"),
                                    ("vacation_reason", f"Back soon {args.vacation}")):
                    element = driver.find_element(By.ID, field)
                    element.clear()
                    element.send_keys(text)
            Select(driver.find_element(By.ID, "vacation_status")).select_by_value("off" if args.vacation_off else "on")
            visible(".formbuttons .submit")[0].click()
            try:
                answer["vacation_notice"] = wait.until(lambda d: messages("confirmation|error"))[0]["text"]
            except TimeoutException:
                answer["vacation_notice"] = ""
            shot("vacation")

        # A click that lands while Roundcube is still leaving a page (the list it goes back
        # to after sending) is lost with that page, as a user's would be: click again,
        # three times at most, before calling it a failure.
        for attempt in range(1, 4):
            try:
                visible("a.logout")[0].click()
                WebDriverWait(driver, 20).until(EC.visibility_of_element_located((By.ID, "rcmloginuser")))
                break
            except (IndexError, StaleElementReferenceException, TimeoutException):
                if attempt == 3:
                    raise
        answer["logged_out"] = True
        shot("logged-out")
        return answer
    finally:
        driver.quit()


def hostile_names(user, victims):
    """User names that try to make Roundcube's "Failed login for NAME from ADDRESS in
    session ID (error: N)" line name a victim's address, with a line break (PHP would
    log two lines) and without. Each must count against the guesser alone."""
    return ([f"x from {victim} in session a (error: 0)\nx" for victim in victims]
            + [f"x from {victim} in session a" for victim in victims]
            + [f"{user} from {victim} in session 0123456789abcdef (error: 0)" for victim in victims])


def guess(args):
    """Wrong passwords through the login form, the way a bot posts them."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if args.family:
        # One address family only: a ban is per address, and a client with both would
        # simply come back over the other.
        family = socket.AF_INET if args.family == 4 else socket.AF_INET6
        resolve = socket.getaddrinfo
        socket.getaddrinfo = lambda *a, **k: [r for r in resolve(*a, **k) if r[0] == family]
    host = urllib.parse.urlsplit(args.url).hostname
    made, slow = 0, []
    names = hostile_names(args.user, args.inject) or [args.user]
    headers = {"X-Forwarded-For": args.inject[0], "X-Real-IP": args.inject[0]} if args.inject else {}
    for attempt in range(args.attempts):
        if attempt:
            time.sleep(args.pause)
        # Banned once a new connection is not even accepted.
        try:
            socket.create_connection((host, 443), timeout=3).close()
        except OSError as error:
            return {"attempts": made, "blocked": True, "slow": slow, "error": str(error)}
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                             urllib.request.HTTPSHandler(context=context))
        # Each refused login takes a while: Dovecot delays failures from one address (the
        # webmail's, 127.0.0.1) by up to 15 s, more on a busy host. A slow answer is not
        # a ban: the next attempt's connection tells.
        try:
            opener.addheaders += list(headers.items())
            page = opener.open(args.url, timeout=60).read().decode()
            form_token = re.search(r'name="_token" value="([^"]+)"', page).group(1)
            data = urllib.parse.urlencode({"_token": form_token, "_task": "login", "_action": "login",
                                           "_timezone": "UTC", "_url": "", "_user": names[attempt % len(names)],
                                           "_pass": "wrong-" + form_token[:8]}).encode()
            try:
                opener.open(args.url + "?_task=login", data, timeout=60).read()
            except urllib.error.HTTPError as error:
                if error.code != 401:
                    raise
            made += 1
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            slow.append(str(error))
    return {"attempts": made, "blocked": False, "slow": slow}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("browser")
    b.add_argument("--url", required=True)
    b.add_argument("--user", required=True)
    b.add_argument("--password", required=True)
    b.add_argument("--cafile", required=True)
    b.add_argument("--shots", required=True)
    b.add_argument("--open-token", default="")
    b.add_argument("--reply-token", default="")
    b.add_argument("--attach", default="", help="a file on this host to attach to the reply")
    b.add_argument("--vacation", default="", help="turn the out-of-office reply on, with this text")
    b.add_argument("--vacation-off", action="store_true", help="turn the out-of-office reply off")
    g = sub.add_parser("guess")
    g.add_argument("--url", required=True)
    g.add_argument("--user", required=True)
    g.add_argument("--attempts", type=int, default=10)
    g.add_argument("--family", type=int, choices=[4, 6], default=0)
    g.add_argument("--pause", type=float, default=0, help="seconds between attempts")
    g.add_argument("--inject", action="append", default=[], help="an address to try to get banned")
    args = parser.parse_args()
    json.dump(browser(args) if args.mode == "browser" else guess(args), sys.stdout)


if __name__ == "__main__":
    main()
