import { render } from "preact";
import { App } from "./components/App";
import { localeStore } from "./locale";
import "./styles.css";

document.documentElement.lang = localeStore.get() === "zh" ? "zh-CN" : "en";
render(<App />, document.getElementById("app")!);
