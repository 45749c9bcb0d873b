/*
 * proofWidget: the SANDBOX stand-in of the hosted widget.
 *
 * The real widget is loaded the same way and takes the same options: what
 * your backend got from POST /widget/session, passed through unmodified
 * (camelCase names: widgetId, merchantTransactionId, initToken,
 * initTokenType, signature, address, currency, network, amount, type, ...;
 * the snake_case names of the answer are accepted too).
 *
 *   <script src="https://SERVICE/widget/sdk.js"></script>
 *   proofWidget.run({ ...session, onStatus: (status) => {}, onClose: () => {} });
 *
 * What it does, and what the real widget does first too:
 *   1. POST /widget/init with the locked values, the signature and the
 *      single-use init token. The service checks them against the session;
 *      a tampered value is refused.
 *   2. Show the locked amount, currency, network and address.
 * What only the sandbox does:
 *   3. Offer Pay, Fail and Cancel. Each calls
 *      POST /sandbox/transactions/{id}/simulate, which feeds the provider
 *      events a real payment would bring. Your backend hears about them as it
 *      would in production: webhooks, GET /ws, GET /widget/transactions/{id}.
 *
 * onStatus(status) is a convenience of the sandbox: trust your backend (the
 * signed webhook), never the browser, for the outcome of a payment.
 */
(function () {
  "use strict";

  // The service that served this script is the one the widget talks to.
  var script = document.currentScript;
  var serviceUrl = script ? new URL(script.src).origin : window.location.origin;

  var FIELDS = [
    ["widgetId", "widget_id"],
    ["merchantTransactionId", "merchant_transaction_id"],
    ["initToken", "init_token"],
    ["initTokenType", "init_token_type"],
    ["signature", "signature"],
    ["address", "address"],
    ["currency", "currency"],
    ["network", "network"],
    ["amount", "amount"],
    ["type", "type"],
    ["fiatCurrency", "fiat_currency"],
    ["redirectUrl", "redirect_url"],
    ["theme", "theme"],
  ];

  function readOptions(options) {
    var read = {};
    FIELDS.forEach(function (names) {
      var value = options[names[0]];
      read[names[0]] = value !== undefined ? value : options[names[1]];
    });
    var missing = ["widgetId", "merchantTransactionId", "initToken", "signature", "address",
      "currency", "network", "amount", "type"].filter(function (name) {
      return typeof read[name] !== "string" || read[name] === "";
    });
    if (missing.length > 0) {
      throw new Error("proofWidget.run: missing option(s) " + missing.join(", ") +
        " (pass what POST /widget/session returned)");
    }
    return read;
  }

  function element(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (name === "text") {
        node.textContent = attributes[name];
      } else if (name === "style") {
        node.style.cssText = attributes[name];
      } else {
        node.setAttribute(name, attributes[name]);
      }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function row(label, field, value) {
    return element("div", { style: "display:flex;justify-content:space-between;gap:12px;margin:6px 0" }, [
      element("span", { text: label, style: "color:#667" }),
      element("span", {
        text: value,
        "data-proof": field,
        style: "font-family:ui-monospace,monospace;word-break:break-all;text-align:right",
      }),
    ]);
  }

  function button(label, outcome, colour) {
    return element("button", {
      type: "button",
      text: label,
      "data-proof-outcome": outcome,
      style: "flex:1;padding:10px;border:0;border-radius:6px;font-size:15px;cursor:pointer;color:#fff;background:" + colour,
    });
  }

  // POSTs JSON; resolves with the parsed answer or rejects with the service's
  // error envelope ({error, code, message}).
  function post(path, body, token) {
    var headers = { "Content-Type": "application/json" };
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    return fetch(serviceUrl + path, { method: "POST", headers: headers, body: JSON.stringify(body) })
      .then(function (response) {
        // An answer that is not JSON (a proxy's error page) still fails
        // with its status.
        return response.json().catch(function () { return {}; }).then(function (answer) {
          if (!response.ok) {
            var failure = new Error(answer.message || ("HTTP " + response.status));
            failure.code = answer.code;
            throw failure;
          }
          return answer;
        });
      });
  }

  var OUTCOME_TEXT = {
    completed: "Payment completed",
    failed: "Payment failed",
    cancelled: "Payment cancelled",
    processing: "Payment processing",
  };

  function run(options) {
    var o = readOptions(options || {});
    var onStatus = typeof options.onStatus === "function" ? options.onStatus : function () {};
    var onClose = typeof options.onClose === "function" ? options.onClose : function () {};

    var previous = document.getElementById("proof-widget");
    if (previous) {
      previous.remove();
    }
    var state = element("p", { "data-proof": "state", text: "Connecting…", style: "margin:12px 0;font-weight:600" });
    var details = element("div", { style: "display:none" });
    var actions = element("div", { style: "display:none;gap:8px;margin-top:16px" }, [
      button("Pay", "completed", "#1a7f37"),
      button("Fail", "failed", "#b42318"),
      button("Cancel", "cancelled", "#667085"),
    ]);
    var close = element("button", {
      type: "button",
      text: "Close",
      "data-proof": "close",
      style: "display:none;margin-top:16px;width:100%;padding:10px;border:1px solid #ccd;border-radius:6px;background:#fff;cursor:pointer",
    });
    var card = element("div", {
      role: "dialog",
      "aria-label": "Proof widget (sandbox)",
      style: "background:#fff;color:#112;border-radius:12px;padding:20px 24px;width:min(420px,92vw);" +
        "font:15px/1.4 system-ui,sans-serif;box-shadow:0 12px 40px rgba(0,0,0,.3)",
    }, [
      element("div", { style: "display:flex;justify-content:space-between;align-items:center" }, [
        element("strong", { text: "Proof", style: "font-size:18px" }),
        element("span", {
          text: "SANDBOX: no real payment",
          style: "font-size:12px;padding:2px 8px;border-radius:10px;background:#fff4cc;color:#7a5b00",
        }),
      ]),
      state,
      details,
      actions,
      close,
    ]);
    var overlay = element("div", {
      id: "proof-widget",
      // A panel on the right, leaving the partner's page readable beside it.
      style: "position:fixed;inset:0;z-index:2147483647;display:flex;align-items:center;justify-content:flex-end;" +
        "padding:0 4vw;box-sizing:border-box;background:rgba(16,20,30,.35)",
    }, [card]);
    document.body.appendChild(overlay);

    function finish(text) {
      state.textContent = text;
      actions.style.display = "none";
      close.style.display = "block";
    }

    close.addEventListener("click", function () {
      overlay.remove();
      onClose();
    });

    // 1. Redeem the init token with the locked values. The answer repeats
    //    them as the service stored them: those are what the user sees.
    post("/widget/init", {
      widget_id: o.widgetId,
      merchant_transaction_id: o.merchantTransactionId,
      init_token: o.initToken,
      signature: o.signature,
      address: o.address,
      currency: o.currency,
      network: o.network,
      amount: o.amount,
      type: o.type,
    }).then(function (session) {
      // 2. The locked values.
      state.textContent = (session.type === "sell" ? "Sell " : "Buy ") + session.amount + " " + session.currency;
      details.appendChild(row("Amount", "amount", session.amount));
      details.appendChild(row("Currency", "currency", session.currency));
      details.appendChild(row("Network", "network", session.network));
      details.appendChild(row("Address", "address", session.address));
      details.appendChild(row("Paying in", "fiat-currency", session.fiat_currency));
      details.style.display = "block";
      actions.style.display = "flex";
    }).catch(function (failure) {
      finish("Cannot open the widget: " + failure.message + (failure.code ? " (" + failure.code + ")" : ""));
    });

    // 3. Pay, Fail or Cancel: the sandbox's payment simulator.
    actions.addEventListener("click", function (event) {
      var outcome = event.target.getAttribute("data-proof-outcome");
      if (!outcome) {
        return;
      }
      Array.prototype.forEach.call(actions.querySelectorAll("button"), function (b) { b.disabled = true; });
      state.textContent = "Processing…";
      var path = "/sandbox/transactions/" + encodeURIComponent(o.merchantTransactionId) + "/simulate";
      post(path, { outcome: outcome }, o.initToken).then(function (answer) {
        finish(OUTCOME_TEXT[answer.status] || answer.status);
        if (answer.status === "completed" && o.redirectUrl) {
          // The real widget sends the user to redirect_url here; the sandbox
          // stays on the page so you can watch your backend hear about it.
          close.title = "The hosted widget would now open " + o.redirectUrl;
        }
        onStatus(answer.status);
      }).catch(function (failure) {
        finish("The payment could not be simulated: " + failure.message);
      });
    });
  }

  window.proofWidget = { run: run, sandbox: true };
})();
