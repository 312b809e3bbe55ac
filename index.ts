// vps-ha: one environment of a highly available SaaS on budget VPSes. See README.md.
import { vpsHa } from "./components/stack";

export = vpsHa();
