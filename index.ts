// vps-ha: one environment of a highly available SaaS on budget VPSes. See README.md.
import { vpsHa } from "./components/stack";

// A promise: the program first reads the deployed stack (see components/replacement.ts).
export = vpsHa();
