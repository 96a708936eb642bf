// Sign-in: exchange a department token for the session cookie, then go back to the viewer (or the view that sent
// us here). A printed link carries the token in the fragment (#token=…): browsers never send a fragment, so the
// token reaches the server only in this POST body, never in a request line or a log; it is wiped from the address
// bar at once.

const $ = (id) => document.getElementById(id);
const VIEWER = /^\/viewer\/(?![/\\])[^\\]*$/; // only back into the viewer: never another site

function next() {
  const wanted = new URLSearchParams(window.location.search).get("next") ?? "";
  return VIEWER.test(wanted) ? wanted : "/viewer/";
}

async function signIn(token) {
  $("signin-message").textContent = "登录中 Signing in…";
  const response = await fetch("/viewer/signin", {
    method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ token }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("signin-message").textContent = `登录失败 Sign-in refused: ${body.description ?? response.status}`;
    return;
  }
  window.location.replace(next());
}

const fromLink = new URLSearchParams(window.location.hash.slice(1)).get("token");
if (fromLink) {
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  signIn(fromLink.trim());
}
$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("token").value.trim());
});
