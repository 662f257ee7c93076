import "./console.css";
import { render } from "preact";
import { App } from "./app.js";
import { SessionManager } from "./session.js";

render(<App manager={new SessionManager()} />, document.getElementById("app")!);
