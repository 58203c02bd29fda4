"""The GUI's pages: scripts ``streamlit`` runs through ``st.navigation`` (never imported)."""
